//! A timed check that a Docker daemon answers, before testcontainers is trusted:
//! a silent daemon makes testcontainers hang. And the log lines that mean a container's
//! server is ready.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The line of the mysql image that means the real server is up, on stderr.
///
/// The image's entrypoint first starts a temporary server, socket only, to create the
/// database and users, stops it, and only then starts the real server. Both log
/// `mysqld: ready for connections. Version: '…'  socket: '…'  port: N  …`; the temporary
/// one with `port: 0`, the real one with `port: 3306`. Waiting for the first "ready for
/// connections" (as this harness did) returns while the temporary server is about to go
/// down. The two spaces on each side are the server's format (`socket: '%s'  port: %d  %s`)
/// and keep the X Plugin's `port: 33060,` from matching.
pub const MYSQL_READY_ON_STDERR: &str = "  port: 3306  ";

/// The line (index into `lines`) at which a testcontainers wait for `message` ends: it
/// counts occurrences of the bytes anywhere in the log stream, and is done at the
/// `times`-th. None if the log never gets there.
pub fn ready_at(lines: &[&str], message: &str, times: usize) -> Option<usize> {
    let mut seen = 0;
    for (index, line) in lines.iter().enumerate() {
        seen += line.matches(message).count();
        if seen >= times {
            return Some(index);
        }
    }
    None
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's lines from the first boot of a `mysql:8.4` container (8.4.8, a database
    /// and a user created by the entrypoint), as a public `docker compose` log shows them:
    /// initialisation, the temporary server (pid 121, socket only), its shutdown after the
    /// init scripts, then the real server (pid 1). A few InnoDB and TLS lines are left out.
    const MYSQL_84_BOOT: &[&str] = &[
        "2026-03-18T23:00:14.976893Z 0 [System] [MY-015017] [Server] MySQL Server Initialization - start.",
        "2026-03-18T23:00:14.980996Z 0 [System] [MY-013169] [Server] /usr/sbin/mysqld (mysqld 8.4.8) initializing of server in progress as process 80",
        "2026-03-18T23:00:20.788246Z 6 [Warning] [MY-010453] [Server] root@localhost is created with an empty password ! Please consider switching off the --initialize-insecure option.",
        "2026-03-18T23:00:26.686583Z 0 [System] [MY-015018] [Server] MySQL Server Initialization - end.",
        "2026-03-18T23:00:26.802106Z 0 [System] [MY-015015] [Server] MySQL Server - start.",
        "2026-03-18T23:00:27.223869Z 0 [System] [MY-010116] [Server] /usr/sbin/mysqld (mysqld 8.4.8) starting as process 121",
        "2026-03-18T23:00:29.324887Z 0 [System] [MY-011323] [Server] X Plugin ready for connections. Socket: /var/run/mysqld/mysqlx.sock",
        "2026-03-18T23:00:29.325344Z 0 [System] [MY-010931] [Server] /usr/sbin/mysqld: ready for connections. Version: '8.4.8'  socket: '/var/run/mysqld/mysqld.sock'  port: 0  MySQL Community Server - GPL.",
        "2026-03-18T23:00:37.649159Z 14 [System] [MY-013172] [Server] Received SHUTDOWN from user root. Shutting down mysqld (Version: 8.4.8).",
        "2026-03-18T23:00:38.560387Z 0 [System] [MY-010910] [Server] /usr/sbin/mysqld: Shutdown complete (mysqld 8.4.8)  MySQL Community Server - GPL.",
        "2026-03-18T23:00:38.560455Z 0 [System] [MY-015016] [Server] MySQL Server - end.",
        "2026-03-18T23:00:38.709692Z 0 [System] [MY-015015] [Server] MySQL Server - start.",
        "2026-03-18T23:00:39.094888Z 0 [System] [MY-010116] [Server] /usr/sbin/mysqld (mysqld 8.4.8) starting as process 1",
        "2026-03-18T23:00:41.010302Z 0 [System] [MY-011323] [Server] X Plugin ready for connections. Bind-address: '::' port: 33060, socket: /var/run/mysqld/mysqlx.sock",
        "2026-03-18T23:00:41.010955Z 0 [System] [MY-010931] [Server] /usr/sbin/mysqld: ready for connections. Version: '8.4.8'  socket: '/var/run/mysqld/mysqld.sock'  port: 3306  MySQL Community Server - GPL.",
    ];

    const TEMPORARY_SERVER_READY: usize = 7;
    const REAL_SERVER_READY: usize = 14;

    #[test]
    fn the_mysql_wait_ends_at_the_real_server_not_the_temporary_one() {
        // What the MySQL dialect hands testcontainers (message_on_stderr, once).
        let wait = super::super::sql::MYSQL.ready_on_stderr;
        assert_eq!(ready_at(MYSQL_84_BOOT, wait, 1), Some(REAL_SERVER_READY));
    }

    #[test]
    fn the_old_mysql_wait_ended_at_the_temporary_server() {
        assert_eq!(
            ready_at(MYSQL_84_BOOT, "ready for connections. Version", 1),
            Some(TEMPORARY_SERVER_READY)
        );
    }

    #[test]
    fn the_x_plugin_line_and_an_8_4_0_real_line_are_told_apart() {
        // 8.4.0, where the X Plugin line comes after the server's.
        let boot = [
            "2025-04-14T14:59:54.899776Z 0 [System] [MY-010931] [Server] /usr/sbin/mysqld: ready for connections. Version: '8.4.0'  socket: '/var/run/mysqld/mysqld.sock'  port: 3306  MySQL Community Server - GPL.",
            "2025-04-14T14:59:55.155405Z 0 [System] [MY-011323] [Server] X Plugin ready for connections. Bind-address: '::' port: 33060, socket: /var/run/mysqld/mysqlx.sock",
        ];
        assert_eq!(ready_at(&boot, MYSQL_READY_ON_STDERR, 1), Some(0));
        assert_eq!(ready_at(&boot[1..], MYSQL_READY_ON_STDERR, 1), None);
    }
}
