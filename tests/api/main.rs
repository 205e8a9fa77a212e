//! Integration tests: the real server on 127.0.0.1:0, real clients over real sockets.

mod generated;
mod graphql_http;
mod graphql_protocol;
mod graphql_subscriptions;
mod node_client;
mod publish;
mod shutdown;
mod test_app;
mod tutorial;
mod ws;
