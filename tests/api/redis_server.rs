//! A private redis-server for a test: its own port, its own directory,
//! stopped and removed when dropped.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::test_app::within;

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl RedisServer {
    /// Starts redis-server on a free port in a new temporary directory.
    pub async fn start() -> Self {
        // A port found free may be taken by another test before redis-server
        // binds it: then it exits at once, and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("longlat-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create the redis directory");
            let mut server = Self {
                child: None,
                port,
                dir,
            };
            if server.launch("yes").await {
                return server;
            }
        }
        panic!("redis-server exited before it was ready on five free ports");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts (again) on the same port and directory, keeping the data
    /// (append-only file), and waits until it accepts connections.
    pub async fn restart(&mut self) {
        assert!(
            self.launch("yes").await,
            "redis-server exited before it was ready"
        );
    }

    /// Starts again on the same port without persistence, as a Redis
    /// configured without it comes back after a crash: with no data at all.
    pub async fn restart_empty(&mut self) {
        assert!(
            self.launch("no").await,
            "redis-server exited before it was ready"
        );
    }

    /// Starts redis-server and waits until it accepts connections; `false`
    /// when it exited first (its port was taken).
    async fn launch(&mut self, appendonly: &str) -> bool {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", appendonly, "--logfile", ""])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (tests/run installs it)");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = within("redis-server to accept connections", async {
            while let Some(line) = lines.next_line().await.expect("read redis-server output") {
                if line.contains("Ready to accept connections") {
                    return true;
                }
            }
            false
        })
        .await;
        if ready {
            // Keep draining its output so it never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            self.child = Some(child);
        }
        ready
    }

    /// Waits until the server answers PING.
    pub async fn wait_for_ping(&self) {
        let client = ::redis::Client::open(self.url()).expect("a redis URL");
        within("redis-server to answer PING", async {
            loop {
                if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                    let pong: ::redis::RedisResult<String> =
                        ::redis::cmd("PING").query_async(&mut conn).await;
                    if pong.is_ok() {
                        return;
                    }
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
    }

    /// While the server is down, holds its port and turns away the next
    /// `attempts` connections (accepted, then closed at once): a way to
    /// wait for an outage to have lasted through that many reconnection
    /// attempts of the clients, without guessing a duration.
    pub async fn turn_away(&self, attempts: usize) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("hold the port of the stopped redis-server");
        within("clients to try to reconnect", async {
            for _ in 0..attempts {
                drop(listener.accept().await.expect("accept a connection"));
            }
        })
        .await;
    }

    /// Kills the server at once, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
