//! A timed check that a Docker daemon answers, before testcontainers is trusted:
//! a silent daemon makes testcontainers hang.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const PING: &[u8] = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";

/// Where the daemon would be, as testcontainers looks for it.
pub fn daemon_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// True if the Docker daemon answers `/_ping` with OK within `limit`.
pub fn daemon_answers(limit: Duration) -> bool {
    let address = daemon_address();
    let reply = if let Some(path) = address.strip_prefix("unix://") {
        UnixStream::connect(path)
            .ok()
            .and_then(|s| exchange(s, limit))
    } else if let Some(host) = address.strip_prefix("tcp://") {
        host.to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .and_then(|addr| TcpStream::connect_timeout(&addr, limit).ok())
            .and_then(|s| exchange(s, limit))
    } else {
        None
    };
    reply.is_some_and(|r| r.starts_with("HTTP/1.") && r.contains(" 200 ") && r.ends_with("OK"))
}

fn exchange<S: Read + Write + SetTimeouts>(mut stream: S, limit: Duration) -> Option<String> {
    stream.set_timeouts(limit);
    stream.write_all(PING).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    Some(reply.trim_end().to_string())
}

trait SetTimeouts {
    fn set_timeouts(&self, limit: Duration);
}

impl SetTimeouts for UnixStream {
    fn set_timeouts(&self, limit: Duration) {
        let _ = self.set_read_timeout(Some(limit));
        let _ = self.set_write_timeout(Some(limit));
    }
}

impl SetTimeouts for TcpStream {
    fn set_timeouts(&self, limit: Duration) {
        let _ = self.set_read_timeout(Some(limit));
        let _ = self.set_write_timeout(Some(limit));
    }
}
