//! Driver tests against real sockets: echo, buffer-ring exhaustion, short sends, peer reset,
//! timers. (Cancellation leak checks count process descriptors, so they live alone in
//! `tests/uring_cancel.rs`.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::IntoRawFd;
use std::rc::Rc;
use std::time::Duration;

use super::*;

/// Runs `body` on a fresh glommio executor with a driver of the given sizes.
pub(crate) fn with_driver<F, Fut>(cfg: DriverConfig, body: F)
where
    F: FnOnce(Rc<Driver>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(512 << 10)
        .spawn(move || async move {
            let driver = Driver::new(cfg).expect("driver");
            glommio::spawn_local(driver.clone().run()).detach();
            body(driver.clone()).await;
            driver.stop();
        })
        .expect("executor")
        .join()
        .expect("join");
}

fn listener() -> (std::os::fd::RawFd, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    (l.into_raw_fd(), addr)
}

fn close_fd(fd: std::os::fd::RawFd) {
    // SAFETY: the test owns this listening descriptor and closes it once.
    unsafe { libc::close(fd) };
}

#[test]
fn echoes_bytes_through_accept_recv_send() {
    let (lfd, addr) = listener();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"hello ring").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    with_driver(DriverConfig::default(), move |d| async move {
        let mut acc = Accept::new(d.clone(), lfd);
        let fd = acc.accept().await.unwrap();
        let mut conn = Socket::from_fd(d.clone(), fd);
        while let Some(buf) = conn.recv().await.unwrap() {
            let (r, _) = conn.send_all(buf).await;
            r.unwrap();
        }
        drop(conn);
        close_fd(lfd);
    });
    assert_eq!(client.join().unwrap(), b"hello ring");
}

/// A client sends `len` patterned bytes and closes; the server receives them holding up to
/// `hold` buffers at a time (then gives them all back), checks every byte arrived in order and
/// every buffer came back, then runs `check` on the driver.
fn receive_holding(
    cfg: DriverConfig,
    len: u32,
    hold: usize,
    check: impl FnOnce(&Driver) + Send + 'static,
) {
    let (lfd, addr) = listener();
    let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let expect = payload.clone();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&payload).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let pool = cfg.recv_buffers;
    with_driver(cfg, move |d| async move {
        let mut acc = Accept::new(d.clone(), lfd);
        let fd = acc.accept().await.unwrap();
        let mut conn = Socket::from_fd(d.clone(), fd);
        let mut got = Vec::new();
        let mut held = Vec::new();
        while let Some(buf) = conn.recv().await.unwrap() {
            got.extend_from_slice(buf.bytes());
            held.push(buf);
            if held.len() >= hold {
                held.clear(); // give them all back at once
            }
        }
        drop(held);
        assert_eq!(got.len(), expect.len());
        assert!(got == expect, "bytes differ");
        assert_eq!(d.free_buffers(), pool, "every buffer returned");
        check(&d);
        close_fd(lfd);
    });
    client.join().unwrap();
}

#[test]
fn survives_buffer_ring_exhaustion_without_losing_bytes() {
    // 16 buffers of 1 KiB; the server holds 12 received buffers at a time.
    let cfg = DriverConfig {
        ring_entries: 64,
        recv_buffers: 16,
        recv_buffer_size: 1024,
    };
    receive_holding(cfg, 256 * 1024, 12, |_| {});
}

#[test]
fn reuses_a_small_window_of_buffers_when_few_are_in_use() {
    // 1024 buffers, one message at a time: the receives must keep reusing the same few
    // buffers (a ring holding the whole pool would walk through all of them, making the whole
    // pool resident).
    let cfg = DriverConfig {
        ring_entries: 64,
        recv_buffers: 1024,
        recv_buffer_size: 1024,
    };
    let (lfd, addr) = listener();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut b = [0u8; 4];
        for i in 0..300u32 {
            s.write_all(&i.to_le_bytes()).unwrap();
            s.read_exact(&mut b).unwrap();
            assert_eq!(u32::from_le_bytes(b), i);
        }
    });
    with_driver(cfg, move |d| async move {
        let mut acc = Accept::new(d.clone(), lfd);
        let fd = acc.accept().await.unwrap();
        let mut conn = Socket::from_fd(d.clone(), fd);
        let mut used = std::collections::BTreeSet::new();
        let mut n = 0;
        while let Some(buf) = conn.recv().await.unwrap() {
            used.insert(buf.bid());
            n += 1;
            let (r, _) = conn.send_all(buf).await;
            r.unwrap();
        }
        assert!(n >= 300, "{n} receives");
        // The initial window plus the one held while the ring was topped up.
        let window = bufring::INITIAL_WINDOW;
        assert!(
            used.len() <= window as usize + 1,
            "{} distinct buffers for {n} receives",
            used.len()
        );
        assert_eq!(d.buffer_window(), window, "never starved");
        close_fd(lfd);
    });
    client.join().unwrap();
}

#[test]
fn grows_the_buffer_window_when_receives_find_it_empty() {
    // Holding 200 buffers at once needs more than the initial window.
    let cfg = DriverConfig {
        ring_entries: 64,
        recv_buffers: 1024,
        recv_buffer_size: 1024,
    };
    receive_holding(cfg, 400 * 1024, 200, |d| {
        assert!(d.buffer_window() >= 128, "window {}", d.buffer_window());
    });
}

#[test]
fn resumes_short_sends_of_a_large_buffer() {
    let (lfd, addr) = listener();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        // Read slowly at first so the socket buffer fills and sends come back short.
        std::thread::sleep(Duration::from_millis(200));
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let expect = big.clone();
    with_driver(DriverConfig::default(), move |d| async move {
        let mut acc = Accept::new(d.clone(), lfd);
        let fd = acc.accept().await.unwrap();
        let conn = Socket::from_fd(d.clone(), fd);
        let (r, back) = conn.send_all(big).await;
        r.unwrap();
        assert_eq!(back.len(), 8 * 1024 * 1024);
        drop(conn);
        close_fd(lfd);
    });
    let got = client.join().unwrap();
    assert_eq!(got.len(), expect.len());
    assert!(got == expect);
}

#[test]
fn reports_peer_reset() {
    let (lfd, addr) = listener();
    let client = std::thread::spawn(move || {
        let s = socket2::Socket::from(TcpStream::connect(addr).unwrap());
        (&s).write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        s.set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
    });
    with_driver(DriverConfig::default(), move |d| async move {
        let mut acc = Accept::new(d.clone(), lfd);
        let fd = acc.accept().await.unwrap();
        let mut conn = Socket::from_fd(d.clone(), fd);
        let first = conn.recv().await.unwrap().unwrap();
        assert_eq!(first.bytes(), b"x");
        drop(first);
        let err = conn.recv().await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET));
        close_fd(lfd);
    });
    client.join().unwrap();
}

#[test]
fn connect_refused_and_timers() {
    // A port with nothing listening.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    with_driver(DriverConfig::default(), move |d| async move {
        let err = connect(&d, addr).await.err().expect("refused");
        assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
        let t = std::time::Instant::now();
        sleep(&d, Duration::from_millis(30)).await;
        assert!(t.elapsed() >= Duration::from_millis(25));
        let r = timeout(&d, Duration::from_millis(200), async { 5 }).await;
        assert_eq!(r, Ok(5));
    });
}
