//! The service's integration tests, one binary: the HTTP API, bad inputs, integrators, the live
//! stream, PostgreSQL, the OpenAPI property tests, the page and the browser tests (one module a
//! file).
//! One binary rather than one a file, so that the dependencies are linked once.

mod common;
mod api;
mod bad_inputs;
mod e2e;
mod integrators;
mod live;
mod postgres;
mod schemathesis;
mod web;
