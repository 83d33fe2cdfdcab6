//! Cancellation without descriptor, slot or buffer leaks: accepts, receives, sends and timers
//! dropped mid-flight. Alone in its own test binary because it counts the process's open
//! descriptors, which tests running in parallel threads would disturb.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::IntoRawFd;
use std::rc::Rc;
use std::time::Duration;

use ringway::uring::{sleep, timeout, Accept, Driver, DriverConfig, Socket};

fn with_driver<F, Fut>(cfg: DriverConfig, body: F)
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

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn cancelled_operations_leak_no_descriptor_slot_or_buffer() {
    let (lfd, addr) = listener();
    // Every client socket is open before the driver starts, so the descriptor count taken
    // inside it is not disturbed by the client side (the listen backlog holds them).
    let held: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&[7u8; 3000]).unwrap();
            s
        })
        .collect();
    with_driver(DriverConfig::default(), move |d| async move {
        let before = open_fds();
        let mut acc = Accept::new(d.clone(), lfd);
        for i in 0..50 {
            let fd = acc.accept().await.unwrap();
            let mut conn = Socket::from_fd(d.clone(), fd);
            if i % 2 == 0 {
                // Hold a buffer, then drop the connection with a receive armed.
                let b = conn.recv().await.unwrap().unwrap();
                assert!(!b.is_empty());
                drop(conn);
                drop(b);
            } else {
                // Cancel a send mid-flight by a deadline of zero, then drop everything.
                let big = vec![1u8; 4 << 20];
                let r = timeout(&d, Duration::from_millis(1), conn.send_all(big)).await;
                let _ = r;
                drop(conn);
            }
        }
        // Cancel a pending accept and a pending sleep.
        let r = timeout(&d, Duration::from_millis(20), acc.accept()).await;
        assert!(r.is_err());
        drop(acc);
        let r = timeout(
            &d,
            Duration::from_millis(5),
            sleep(&d, Duration::from_secs(60)),
        )
        .await;
        assert!(r.is_err());
        // Let the final completions arrive.
        for _ in 0..100 {
            if d.live_ops() == 0 {
                break;
            }
            sleep(&d, Duration::from_millis(10)).await;
        }
        assert_eq!(d.live_ops(), 0, "every slot freed");
        assert_eq!(d.free_buffers(), 1024, "every buffer returned");
        assert!(open_fds() <= before, "no descriptor leaked");
        close_fd(lfd);
    });
    drop(held);
}
