//! The Supervisor's `kubernetes` backend: each scaled pool is a Deployment
//! (`marie-executor-<pool>`) whose replicas the Supervisor sets through the
//! Deployment's `/scale` subresource.

#![warn(missing_docs)]
