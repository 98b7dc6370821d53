//! How the drill waits: one [`Backoff`] for every retry and poll, and the
//! [`Waiter`], which polls a condition with it up to a limit and says what it is
//! waiting for.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::cleanup::Cleanup;
use crate::store::{Error, Result};

/// Pauses that double from `first` up to `max`: the one backoff of the drill (polls
/// of a restore, retries of throttled writes, a recovered API asked again).
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Pauses from `first`, doubling, never longer than `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            next: first.min(max),
            max,
        }
    }

    /// The next pause (and doubles the one after it).
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// Sleeps the next pause.
    pub async fn sleep(&mut self) {
        tokio::time::sleep(self.next_pause()).await;
    }
}

/// Asks `ask` until it answers `Ok` or `timeout` has passed, pausing by `backoff`
/// between asks: the loop of every "ask the API until it answers correctly" wait.
/// The deadline is exclusive (a timeout of zero asks nothing). `Err` carries what
/// the last ask saw (`"no answer yet"` when none was made).
pub async fn ask_until<T, F, Fut>(
    timeout: Duration,
    mut backoff: Backoff,
    mut ask: F,
) -> std::result::Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match ask().await {
            Ok(v) => return Ok(v),
            Err(seen) => last = seen,
        }
        backoff.sleep().await;
    }
    Err(last)
}

/// One look at something being waited for.
#[derive(Debug)]
pub enum Poll<T> {
    /// Done, with its value.
    Ready(T),
    /// Not yet: what it is doing (e.g. `CREATING`).
    Pending(String),
}

/// Progress for people (stderr in the CLI).
pub type Say<'a> = &'a (dyn Fn(String) + Send + Sync);

/// How waits are done: a limit, polling intervals, progress, and the cleanup
/// registry the backends register what they create with.
pub struct Waiter<'a> {
    /// The longest any one wait may take.
    pub limit: Duration,
    /// First interval between polls.
    pub poll: Duration,
    /// Longest interval between polls.
    pub max_poll: Duration,
    /// Where progress goes.
    pub say: Say<'a>,
    /// Where created resources are registered.
    pub cleanup: &'a Cleanup,
}

impl Waiter<'_> {
    /// A backoff at this waiter's polling pace.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.poll, self.max_poll)
    }

    /// Polls `check` until it returns `Some`, backing off from `poll` to `max_poll`,
    /// saying what it waits for when the state it reports changes (and at least every
    /// few minutes), and failing after `limit` with what it last saw.
    pub async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Poll<T>>>,
    {
        let start = Instant::now();
        let mut backoff = self.backoff();
        let mut last = String::new();
        let mut last_said = start;
        loop {
            match check().await? {
                Poll::Ready(v) => {
                    if start.elapsed() >= Duration::from_secs(1) {
                        (self.say)(format!("{what}: done after {}", human(start.elapsed())));
                    }
                    return Ok(v);
                }
                Poll::Pending(state) => {
                    if state != last || last_said.elapsed() >= Duration::from_secs(300) {
                        (self.say)(format!(
                            "waiting for {what}: {state} ({} so far)",
                            human(start.elapsed())
                        ));
                        last_said = Instant::now();
                        last = state;
                    }
                }
            }
            if start.elapsed() >= self.limit {
                return Err(Error::storage(
                    format!("waiting for {what}"),
                    format!("not done within {} (last seen: {last})", human(self.limit)),
                ));
            }
            backoff.sleep().await;
        }
    }
}

impl<'a> Waiter<'a> {
    /// The pace of `tandem dr failover` and `failback`: up to ten minutes a wait,
    /// long enough for Route 53 to see a recovered primary (a few of its 30 s
    /// intervals), polled every second at first and every ten at most.
    pub fn standby_switch(say: Say<'a>, cleanup: &'a Cleanup) -> Self {
        Self {
            limit: Duration::from_secs(600),
            poll: Duration::from_secs(1),
            max_poll: Duration::from_secs(10),
            say,
            cleanup,
        }
    }

    /// The pace of `tandem dr empty-vaults`: up to half an hour for a vault's
    /// deleted recovery points to be gone (AWS Backup deletes them asynchronously),
    /// polled every two seconds at first and every thirty at most.
    pub fn emptying_vaults(say: Say<'a>, cleanup: &'a Cleanup) -> Self {
        Self {
            limit: Duration::from_secs(1800),
            poll: Duration::from_secs(2),
            max_poll: Duration::from_secs(30),
            say,
            cleanup,
        }
    }
}

/// `3 min 20 s`, `850 ms`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else if s >= 1 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_ceiling() {
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        let pauses: Vec<u64> = (0..6).map(|_| b.next_pause().as_secs()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 60, 60]);
        let mut b = Backoff::new(Duration::from_secs(90), Duration::from_secs(60));
        assert_eq!(b.next_pause(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_fails_after_its_limit_naming_what_it_last_saw() {
        let cleanup = Cleanup::new();
        let said = std::sync::Mutex::new(Vec::new());
        let say = |s: String| said.lock().unwrap().push(s);
        let w = Waiter {
            limit: Duration::from_secs(600),
            poll: Duration::from_secs(5),
            max_poll: Duration::from_secs(60),
            say: &say,
            cleanup: &cleanup,
        };
        let started = Instant::now();
        let err = w
            .until("the table", || async {
                Ok(Poll::<()>::Pending("CREATING".into()))
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not done within 10 min 0 s") && err.contains("CREATING"),
            "{err}"
        );
        assert!(started.elapsed() >= Duration::from_secs(600));
        // Said when it started and every five minutes after, not at each of its
        // fourteen polls.
        assert_eq!(said.lock().unwrap().len(), 3);
        let mut n = 0;
        let v = w
            .until("the count", || {
                n += 1;
                let n = n;
                async move {
                    Ok(if n == 3 {
                        Poll::Ready(n)
                    } else {
                        Poll::Pending(format!("{n}"))
                    })
                }
            })
            .await
            .unwrap();
        assert_eq!(v, 3);
        // A wait of a second or more says when it ended; one that was ready at once
        // says nothing.
        assert_eq!(
            said.lock().unwrap().last().map(String::as_str),
            Some("the count: done after 15.0 s")
        );
        let before = said.lock().unwrap().len();
        w.until("the ready", || async { Ok(Poll::Ready(())) })
            .await
            .unwrap();
        assert_eq!(said.lock().unwrap().len(), before);
    }

    /// The deadline is exclusive: a wait of no time asks nothing (on tokio's paused
    /// clock the first ask would land exactly on it); a wait asks until its answer
    /// comes, and one that ends without it says what it saw last.
    #[tokio::test(start_paused = true)]
    async fn an_ask_is_made_before_the_deadline_and_never_at_it() {
        let asks = std::sync::atomic::AtomicUsize::new(0);
        let backoff = || Backoff::new(Duration::from_millis(5), Duration::from_secs(1));
        let ask = |answer_at: usize| {
            let asks = &asks;
            move || async move {
                let n = asks.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if n >= answer_at {
                    Ok(n)
                } else {
                    Err(format!("ask {n}: 503"))
                }
            }
        };
        assert_eq!(
            ask_until(Duration::ZERO, backoff(), ask(1)).await,
            Err("no answer yet".into())
        );
        assert_eq!(asks.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(ask_until(Duration::from_secs(1), backoff(), ask(1)).await, Ok(1));
        asks.store(0, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(ask_until(Duration::from_secs(60), backoff(), ask(3)).await, Ok(3));
        asks.store(0, std::sync::atomic::Ordering::SeqCst);
        // Pauses of 5, 10, 20 ... 640 ms: asks at 0, 5, 15, 35, 75, 155, 315 and 635
        // ms; the next would be at 1.275 s, past the deadline.
        let started = Instant::now();
        assert_eq!(
            ask_until(Duration::from_secs(1), backoff(), ask(usize::MAX)).await,
            Err("ask 8: 503".into())
        );
        assert_eq!(asks.load(std::sync::atomic::Ordering::SeqCst), 8);
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(Duration::from_millis(850)), "850 ms");
        assert_eq!(human(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(human(Duration::from_secs(200)), "3 min 20 s");
        assert_eq!(human(Duration::from_secs(7300)), "2 h 1 min");
    }
}
