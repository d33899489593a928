# Shortcuts for the scripts in scripts/ (they work without make too).
.PHONY: run test setup services

run:
	scripts/serve

test:
	scripts/test

setup:
	scripts/setup

services:
	scripts/start-services
