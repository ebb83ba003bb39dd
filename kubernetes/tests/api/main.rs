//! The backend's requests, checked on the wire against a mocked API server (kube's
//! `tower_test` pattern), and what it makes of the API server's answers.

mod connect;
mod errors;
mod leaving;
mod scale;
mod support;
