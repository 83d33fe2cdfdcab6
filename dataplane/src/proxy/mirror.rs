//! Traffic mirroring (shadowing): a copy of a sampled request goes to another cluster, fire and
//! forget. The shadow's response is read and discarded; it never delays or fails the primary.
//!
//! Design: the request (head with `Host` suffixed `-shadow`, as Envoy does, plus a body that
//! arrived with the head) is copied into a recycled buffer and queued on the worker's bounded
//! [`MirrorQueue`]; a few long-lived tasks per worker send queued copies. A full queue drops the
//! copy (counted), so a slow shadow cluster can never build up memory or work on the primary
//! path. Steady state allocates nothing: buffers and queue slots are reused.
//!
//! Requests whose body has not fully arrived with the head are not mirrored (the primary
//! streams its body; holding it for the shadow would cost memory and latency).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::cluster::balancer::PickContext;
use crate::http::{self, HeadLimits, Method, Parsed, RequestHead, ResponseFraming, ResponseHead};
use crate::proxy::inbuf::InBuf;
use crate::runtime::worker::Worker;
use crate::telemetry::PolicyEvent;
use crate::uring::{self, timeout};

/// Copies waiting to be sent, per worker.
pub const QUEUE_CAPACITY: usize = 64;
/// Tasks sending copies, per worker.
pub const SENDERS: usize = 4;
/// Longest a shadow exchange may take, connect to last response byte.
pub const SHADOW_TIMEOUT: Duration = Duration::from_secs(5);

pub struct MirrorJob {
    pub cluster: usize,
    pub bytes: Vec<u8>,
}

/// The worker's queue of mirrored requests and the pool of their buffers.
#[derive(Default)]
pub struct MirrorQueue {
    jobs: RefCell<VecDeque<MirrorJob>>,
    spare: RefCell<Vec<Vec<u8>>>,
    waiters: RefCell<Vec<Waker>>,
}

impl MirrorQueue {
    /// A cleared buffer to build a copy in.
    pub fn buffer(&self) -> Vec<u8> {
        let mut b = self.spare.borrow_mut().pop().unwrap_or_default();
        b.clear();
        b
    }

    /// Queues a copy; false (and the buffer recycled) if the queue is full.
    pub fn push(&self, job: MirrorJob) -> bool {
        let mut jobs = self.jobs.borrow_mut();
        if jobs.len() >= QUEUE_CAPACITY {
            drop(jobs);
            self.recycle(job.bytes);
            return false;
        }
        jobs.push_back(job);
        drop(jobs);
        if let Some(w) = self.waiters.borrow_mut().pop() {
            w.wake();
        }
        true
    }

    fn recycle(&self, b: Vec<u8>) {
        let mut spare = self.spare.borrow_mut();
        if spare.len() < QUEUE_CAPACITY + SENDERS {
            spare.push(b);
        }
    }

    async fn next(&self) -> MirrorJob {
        std::future::poll_fn(|cx| match self.jobs.borrow_mut().pop_front() {
            Some(j) => Poll::Ready(j),
            None => {
                let mut w = self.waiters.borrow_mut();
                if !w.iter().any(|x| x.will_wake(cx.waker())) {
                    w.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }
}

/// Writes the copy of a request: its forwarded head with `Host` (or the absolute-form
/// authority's host) suffixed `-shadow`, then `body`.
pub fn build_copy(head: &RequestHead, buf: &[u8], body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(head.request_line.get(buf));
    for f in head.headers.iter().filter(|f| f.forward) {
        let name = f.name.get(buf);
        if name.eq_ignore_ascii_case(b"host") {
            let v = f.value.get(buf);
            // Insert before a port, not inside an IPv6 literal.
            let port_at = match v.iter().rposition(|&b| b == b':') {
                Some(i) if !v[i..].contains(&b']') => i,
                _ => v.len(),
            };
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(&v[..port_at]);
            out.extend_from_slice(b"-shadow");
            out.extend_from_slice(&v[port_at..]);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(f.line.get(buf));
        }
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(body);
}

/// Starts the worker's sender tasks (once per worker).
pub fn spawn_senders(w: &Rc<Worker>) {
    for _ in 0..SENDERS {
        let w = w.clone();
        glommio::spawn_local(async move {
            let mut inb = InBuf::default();
            let mut resp = ResponseHead::default();
            loop {
                let job = w.mirror.next().await;
                let cluster = job.cluster;
                let ok = timeout(
                    &w.driver,
                    SHADOW_TIMEOUT,
                    send_one(&w, job, &mut inb, &mut resp),
                )
                .await
                .unwrap_or(false);
                inb.clear();
                w.metrics.policy_event(
                    Some(cluster),
                    if ok {
                        PolicyEvent::Mirrored
                    } else {
                        PolicyEvent::MirrorFailed
                    },
                );
            }
        })
        .detach();
    }
}

/// Sends one copy on a fresh connection and reads the response to its end (discarded).
async fn send_one(
    w: &Rc<Worker>,
    job: MirrorJob,
    inb: &mut InBuf,
    resp: &mut ResponseHead,
) -> bool {
    let view = w.view();
    let Some(cv) = view.clusters.get(job.cluster) else {
        w.mirror.recycle(job.bytes);
        return false;
    };
    let picked = cv.balancer.borrow_mut().pick(&PickContext::ANY);
    let Some(addr) = picked.and_then(|i| cv.endpoints.get(i).copied()) else {
        w.mirror.recycle(job.bytes);
        return false;
    };
    let mut conn = match uring::connect(&w.driver, addr).await {
        Ok(c) => c,
        Err(_) => {
            w.mirror.recycle(job.bytes);
            return false;
        }
    };
    let (r, bytes) = conn.send_all(job.bytes).await;
    w.mirror.recycle(bytes);
    if r.is_err() {
        return false;
    }
    // Read the response head, then drain until the upstream closes (we sent close).
    loop {
        match http::parse_response_head(inb.bytes(), &HeadLimits::default(), Method::Get, resp) {
            Ok(Parsed::Complete(_)) => break,
            Ok(Parsed::Partial) => {}
            Err(_) => return false,
        }
        match conn.recv().await {
            Ok(Some(b)) => inb.push(b),
            _ => return false,
        }
    }
    if resp.framing != ResponseFraming::None {
        inb.clear();
        while let Ok(Some(_)) = conn.recv().await {}
    }
    true
}
