//! `TCP_NODELAY` on every connection: frames are small and must leave at once, not wait for
//! the previous one's ACK.
//!
//! Set once on the listener, which Linux copies to every socket it accepts: a system call fewer
//! per connection in a reconnect storm (one of five a stream's set-up made). Where the first
//! accepted socket shows it was not copied, every socket is set as it comes, as before.

use tokio::net::{TcpListener, TcpStream};

/// Whether accepted sockets still need the option set, learnt from the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDelay {
    Unknown,
    Inherited,
    PerSocket,
}

impl NoDelay {
    /// Sets the option on the listener; `PerSocket` if that failed.
    pub fn on_listener(listener: &TcpListener) -> NoDelay {
        match socket2::SockRef::from(listener).set_tcp_nodelay(true) {
            Ok(()) => NoDelay::Unknown,
            Err(e) => {
                tracing::debug!(error = %e, "TCP_NODELAY not set on the listener");
                NoDelay::PerSocket
            }
        }
    }

    /// Makes sure an accepted socket has the option (asking the first one whether it came set).
    pub fn accepted(&mut self, sock: &TcpStream) {
        if *self == NoDelay::Unknown {
            *self = match sock.nodelay() {
                Ok(true) => NoDelay::Inherited,
                _ => NoDelay::PerSocket,
            };
        }
        if *self == NoDelay::PerSocket {
            let _ = sock.set_nodelay(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn accept_one(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn every_accepted_socket_has_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut nodelay = NoDelay::on_listener(&listener);
        assert_eq!(nodelay, NoDelay::Unknown);
        for _ in 0..3 {
            let (_client, sock) = accept_one(&listener).await;
            nodelay.accepted(&sock);
            assert!(sock.nodelay().unwrap());
        }
        // Linux copies the listener's option: no system call per socket after the first.
        #[cfg(target_os = "linux")]
        assert_eq!(nodelay, NoDelay::Inherited);
    }

    #[tokio::test]
    async fn a_listener_without_it_sets_each_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut nodelay = NoDelay::Unknown;
        let (_client, sock) = accept_one(&listener).await;
        nodelay.accepted(&sock);
        assert_eq!(nodelay, NoDelay::PerSocket);
        assert!(sock.nodelay().unwrap());
        let (_client, sock) = accept_one(&listener).await;
        nodelay.accepted(&sock);
        assert!(sock.nodelay().unwrap());
    }
}
