"""The igor operator: kopf handlers for IgorAgent, IgorNode and MigrationRequest."""
