"""RxDB compatibility: `replicateRxCollection` pull, push and pullStream handlers in the
rxdb-server wire format, mapped onto the same feed, scopes and push path as the native
protocol."""
