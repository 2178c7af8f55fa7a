"""etcd: rendering EtcdSpec into etcd's command line, the version check, bootstrap/join
(learner add, promote) and recovery from a snapshot, and the local EtcdMember resource."""
