"""Tests of the block area: selector, planner, probe and provisioning on loop devices."""
