"""One harness for the processes of a run, used by the demo, the bench and the tests: start the
API, the relay, Celery workers and the fakes on free loopback ports, wait until each is ready,
collect its log, stop them all."""
