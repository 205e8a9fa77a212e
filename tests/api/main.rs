//! Integration tests: the real server on 127.0.0.1:0, real clients over real sockets.

mod browser;
mod history;
mod openapi;
mod publish;
mod redis;
mod redis_server;
mod shutdown;
mod sse;
mod test_app;
mod tutorial;
mod ws;
