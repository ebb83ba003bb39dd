//! A Kubernetes API server for tests, small and faithful where Marie's `kubernetes`
//! backend depends on it.

#![warn(missing_docs)]
