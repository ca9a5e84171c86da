//! Tokio task running the replication log over the channel.
