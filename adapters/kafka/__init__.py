"""The Kafka edge: the source (consume, decode, dead-letter), the message formats, the
client factory and the cluster-ingest publisher.

Nothing is imported here: aiokafka loads only when a module of this package is used
(``adapters.registry`` loads the source and the publisher lazily).
"""
