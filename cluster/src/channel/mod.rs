//! Tokio driver for the node-to-node channel: one encrypted TCP connection per pair.
