//! A TCP proxy in front of a real server (the service, PostgreSQL, Redis) that a test can cut
//! (every open connection dropped, new ones refused) and restore: the server going away and
//! coming back, as one client sees it, while the server itself keeps running for everyone else.
//! `loadtest` has its own copy for the fault run's feed cut; this one keeps the tests free of it.

use std::net::SocketAddr;

use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

pub struct CuttableProxy {
    pub addr: SocketAddr,
    open: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl CuttableProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (open, _) = watch::channel(true);
        let state = open.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut state = state.subscribe();
                if !*state.borrow() {
                    continue; // dropped at once: the client sees the connection refused
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Ok(Self { addr, open, accept })
    }

    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
