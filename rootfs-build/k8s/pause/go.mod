module kos.dev/pause

go 1.21
