//! A loopback TCP proxy in front of a remote service (LocalStack playing AWS KMS): plain
//! TCP forwarding on 127.0.0.1 that delays every HTTP request by a fixed time, counts
//! the requests (HTTP/1.1 request lines on the client→server stream) and the TCP
//! connections it accepts. It runs in the orchestrator, never in the measured process,
//! and stops by itself after its lifetime even if nobody stops it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What ends every HTTP/1.1 request line ("POST / HTTP/1.1\r\n"); in a request stream it
/// occurs nowhere else (headers and the JSON bodies of the KMS protocol never hold it).
const REQUEST_LINE_END: &[u8] = b" HTTP/1.1\r\n";

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Counters since the proxy started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// TCP connections accepted.
    pub connections: u64,
    /// HTTP requests forwarded.
    pub requests: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, before: Counts) -> Counts {
        Counts {
            connections: self.connections - before.connections,
            requests: self.requests - before.requests,
        }
    }
}

struct Shared {
    stop: AtomicBool,
    connections: AtomicU64,
    requests: AtomicU64,
    /// Delay per request, ns (changeable while running).
    delay_ns: AtomicU64,
    upstream: SocketAddr,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running proxy; stopped (every thread joined) on drop.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    watchdog: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`, holding every
    /// request `delay` before passing it on; stops after `lifetime` at the latest.
    pub fn start(
        upstream: SocketAddr,
        delay: Duration,
        lifetime: Duration,
    ) -> Result<Proxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("proxy: bind: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("proxy: local address: {e}"))?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            delay_ns: AtomicU64::new(delay.as_nanos() as u64),
            upstream,
            threads: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(listener, &s))
            .map_err(|e| format!("proxy: thread: {e}"))?;
        let s = shared.clone();
        let deadline = Instant::now() + lifetime;
        let watchdog = std::thread::Builder::new()
            .name("proxy-watchdog".into())
            .spawn(move || {
                while !s.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(POLL);
                }
                if !s.stop.swap(true, Ordering::SeqCst) {
                    eprintln!("proxy: lifetime of {} s over, stopping", lifetime.as_secs());
                }
                // Wakes the blocking accept so it sees the flag.
                let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
            })
            .map_err(|e| format!("proxy: thread: {e}"))?;
        Ok(Proxy {
            addr,
            shared,
            accept: Some(accept),
            watchdog: Some(watchdog),
        })
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        Counts {
            connections: self.shared.connections.load(Ordering::SeqCst),
            requests: self.shared.requests.load(Ordering::SeqCst),
        }
    }

    /// Changes the delay of the requests to come.
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ns
            .store(delay.as_nanos() as u64, Ordering::SeqCst);
    }

    /// Stops accepting, ends every connection and joins every thread.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let threads = std::mem::take(&mut *self.shared.threads.lock().expect("not poisoned"));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = stream else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let server = match TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(5)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("proxy: connecting to {}: {e}", shared.upstream);
                continue;
            }
        };
        let pair = (|| {
            for s in [&client, &server] {
                // Without it, Nagle's algorithm and delayed ACKs add up to 40 ms.
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(POLL))?;
            }
            Ok::<_, std::io::Error>((client.try_clone()?, server.try_clone()?))
        })();
        let Ok((client2, server2)) = pair else {
            continue;
        };
        let mut threads = shared.threads.lock().expect("not poisoned");
        threads.retain(|t| !t.is_finished());
        let s = shared.clone();
        if let Ok(t) = std::thread::Builder::new()
            .name("proxy-up".into())
            .spawn(move || pump(client, server, &s, true))
        {
            threads.push(t);
        }
        let s = shared.clone();
        if let Ok(t) = std::thread::Builder::new()
            .name("proxy-down".into())
            .spawn(move || pump(server2, client2, &s, false))
        {
            threads.push(t);
        }
    }
}

/// Copies `from` to `to` until EOF, an error or the stop flag; on the request direction
/// counts request lines and holds each chunk that starts a request for the delay.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared, requests: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail = Vec::new();
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if requests {
                    let arrived = Instant::now();
                    let k = count_request_lines(&mut tail, &buf[..n]);
                    if k > 0 {
                        shared.requests.fetch_add(k, Ordering::SeqCst);
                        let delay = Duration::from_nanos(shared.delay_ns.load(Ordering::SeqCst));
                        let until = arrived + delay;
                        let now = Instant::now();
                        if until > now {
                            std::thread::sleep(until - now);
                        }
                    }
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// Counts [`REQUEST_LINE_END`] in `chunk`, including one split across the previous chunk
/// (whose last bytes `tail` keeps).
fn count_request_lines(tail: &mut Vec<u8>, chunk: &[u8]) -> u64 {
    let pat = REQUEST_LINE_END;
    tail.extend_from_slice(chunk);
    let count = tail.windows(pat.len()).filter(|w| *w == pat).count() as u64;
    // A whole match never fits in fewer than pat.len() bytes, so none is counted twice.
    let keep = tail.len().min(pat.len() - 1);
    tail.drain(..tail.len() - keep);
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_counted_across_chunks() {
        let stream = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}\
POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
        for split in 0..stream.len() {
            let mut tail = Vec::new();
            let n = count_request_lines(&mut tail, &stream[..split])
                + count_request_lines(&mut tail, &stream[split..]);
            assert_eq!(n, 2, "split at {split}");
        }
        let mut tail = Vec::new();
        let bytewise: u64 = stream
            .iter()
            .map(|b| count_request_lines(&mut tail, std::slice::from_ref(b)))
            .sum();
        assert_eq!(bytewise, 2);
    }

    #[test]
    fn proxy_forwards_delays_and_counts() {
        // A one-connection echo server playing the service.
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.write_all(&buf[..n]).unwrap(),
                }
            }
        });
        let mut proxy =
            Proxy::start(upstream, Duration::from_millis(20), Duration::from_secs(30)).unwrap();
        let mut c = TcpStream::connect(proxy.addr).unwrap();
        let request = b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        for _ in 0..3 {
            let t = Instant::now();
            c.write_all(request).unwrap();
            let mut got = vec![0u8; request.len()];
            c.read_exact(&mut got).unwrap();
            assert_eq!(&got, request);
            assert!(t.elapsed() >= Duration::from_millis(20));
        }
        drop(c);
        echo.join().unwrap();
        assert_eq!(
            proxy.counts(),
            Counts {
                connections: 1,
                requests: 3
            }
        );
        proxy.stop();
    }
}
