"""Fault tests: real components stopped or killed on purpose, no mocks.

* ``test_harvest_killed``: the real ``catalogue harvest run`` process killed with SIGKILL halfway
  through a slowed real HTTP DCAT-AP source, then run again (ground truth: the generator).
* ``test_database_restart``: a private embedded PostgreSQL stopped and started again under load
  while the real API is served over HTTP; the catalogue itself is not restarted.
* ``test_opensearch_node_down``: one node of a private three-node OpenSearch cluster stopped
  while clients search; reads go on from replicas, writes reach the index.

The search engine stopped entirely is covered by
``tests/integration/test_search_resilience.py``.
"""
