//! Integration tests: the real server on 127.0.0.1:0, real clients over real sockets.

mod access;
mod browser;
mod cli;
mod fuzz;
mod generated;
mod graphql_http;
mod graphql_limits;
mod graphql_protocol;
mod graphql_push;
mod graphql_subscriptions;
mod history;
mod limits;
mod nginx;
mod node_client;
mod openapi;
mod operations;
mod origins;
mod publish;
mod redis;
mod redis_server;
mod shutdown;
mod sse;
mod test_app;
mod tutorial;
mod ws;
