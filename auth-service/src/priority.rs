//! CPU priority: the work that issues credentials yields the cores to the work that checks them.
//!
//! On a saturated machine the kernel shares the CPU by weight, and a thread at nice 10 weighs
//! about a tenth of one at 0 (CFS weights 110 and 1024). So `Verify` keeps its latency during a
//! login or refresh storm if the storm's CPU-heavy work runs on threads at [`BACKGROUND_NICE`]:
//! the argon2 threads, the runtime that runs the issuing RPCs ([`LowPriorityRuntime`]) and
//! SQLite's connection threads. With nothing else to run, those threads still get whole cores,
//! so throughput on an idle machine is unchanged.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    runtime::{Builder, Handle, Runtime},
    task::JoinHandle,
};

/// The nice value of the threads that issue credentials, hash passwords and write SQLite.
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread to [`BACKGROUND_NICE`]. Lowering needs no privilege; where it
/// fails (or off Linux) the thread keeps its priority, which only costs latency, never answers.
pub fn lower_this_thread() {
    lower_thread(0);
}

/// Never raises: a process started at a higher nice value (lower priority) keeps it, even
/// where it would have the privilege to raise it.
fn lower_thread(thread_id: u32) {
    if thread_nice(thread_id).unwrap_or(0) < BACKGROUND_NICE {
        set_thread_nice(thread_id, BACKGROUND_NICE);
    }
}

/// Lowers every thread of this process whose name starts with `prefix` to [`BACKGROUND_NICE`],
/// for threads a library starts (sqlx's SQLite workers) where we cannot run code first.
pub fn lower_threads_named(prefix: &str) {
    for (thread_id, name) in threads_of_this_process() {
        if name.starts_with(prefix) {
            lower_thread(thread_id);
        }
    }
}

/// This process's threads as (kernel thread id, name), read from `/proc/self/task`.
pub fn threads_of_this_process() -> Vec<(u32, String)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let thread_id = task.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            Some((thread_id, name.trim_end().to_owned()))
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_thread_nice(thread_id: u32, nice: i32) {
    // SAFETY: setpriority takes plain integers and touches no memory of ours. On Linux the nice
    // value is per thread: PRIO_PROCESS with a thread id (0 = the caller) sets that thread alone.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, thread_id, nice) };
}

#[cfg(not(target_os = "linux"))]
fn set_thread_nice(_thread_id: u32, _nice: i32) {}

/// The nice value of one thread of this process (0 = the calling thread); `None` off Linux.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn thread_nice(thread_id: u32) -> Option<i32> {
    // SAFETY: as above; getpriority returns -1 both as a value and on error, hence errno.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, thread_id);
        (*libc::__errno_location() == 0).then_some(nice)
    }
}

#[cfg(not(target_os = "linux"))]
pub fn thread_nice(_thread_id: u32) -> Option<i32> {
    None
}

/// The name of the [`LowPriorityRuntime`]'s threads.
pub const LOW_PRIORITY_THREAD_NAME: &str = "auth-issuing";

/// A second tokio runtime whose worker threads run at [`BACKGROUND_NICE`], for the RPCs that
/// issue credentials (`grpc/priority.rs` decides which). Dropping it stops its threads without
/// waiting for them, so it may be dropped inside the main runtime (tests build many servers).
pub struct LowPriorityRuntime {
    /// Only taken when dropped.
    runtime: Option<Runtime>,
    spawner: LowPriority,
}

impl LowPriorityRuntime {
    /// One worker per core: the issuing work is CPU work (signing, hashing tokens, SQL) and
    /// the main runtime's workers stay free for the reads. Started inside a runtime, that one
    /// is the tasks' home (see [`LowPriority::spawn`]).
    pub fn start() -> std::io::Result<Self> {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let runtime = Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(LOW_PRIORITY_THREAD_NAME)
            .on_thread_start(lower_this_thread)
            .enable_all()
            .build()?;
        let spawner = LowPriority {
            threads: runtime.handle().clone(),
            home: Handle::try_current().ok(),
        };
        Ok(Self {
            runtime: Some(runtime),
            spawner,
        })
    }

    /// What hands tasks to this runtime; cheap to clone.
    pub fn spawner(&self) -> LowPriority {
        self.spawner.clone()
    }
}

impl Drop for LowPriorityRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[derive(Clone, Debug)]
pub struct LowPriority {
    threads: Handle,
    home: Option<Handle>,
}

impl LowPriority {
    /// Runs `task` on the low-priority threads, inside its home runtime's context: whatever it
    /// spawns, connects or sleeps on belongs to the main runtime (a pool connection it opens, a
    /// Redis reconnect, a signature-check round), so nothing of the main runtime's work comes
    /// to depend on these threads, nor dies with them.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.threads.spawn(AtHome {
            home: self.home.clone(),
            task: Box::pin(task),
        })
    }
}

/// A future polled with its home runtime entered.
struct AtHome<F> {
    home: Option<Handle>,
    task: Pin<Box<F>>,
}

impl<F: Future> Future for AtHome<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _home = self.home.as_ref().map(Handle::enter);
        self.task.as_mut().poll(cx)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn this_thread_id() -> u32 {
        #[allow(unsafe_code)]
        // SAFETY: gettid takes no arguments and cannot fail.
        let id = unsafe { libc::gettid() };
        u32::try_from(id).unwrap_or_default()
    }

    #[test]
    fn threads_found_by_name_are_lowered_and_others_are_not() {
        let (started, ready) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::Builder::new()
            .name("prio-probe-1".into())
            .spawn(move || {
                started.send(this_thread_id()).unwrap();
                let _ = stopped.recv();
            })
            .unwrap();
        let worker_id = ready.recv().unwrap();
        let before = thread_nice(0).unwrap();

        lower_threads_named("prio-probe-");

        assert_eq!(thread_nice(worker_id), Some(BACKGROUND_NICE.max(before)));
        assert_eq!(thread_nice(0), Some(before), "the caller was not named so");
        stop.send(()).unwrap();
        worker.join().unwrap();
    }

    #[test]
    fn the_low_priority_runtime_runs_its_tasks_at_background_nice() {
        let before = thread_nice(0).unwrap();
        let runtime = LowPriorityRuntime::start().unwrap();
        let (sent, received) = std::sync::mpsc::channel();
        runtime.spawner().spawn(async move {
            let _ = sent.send(thread_nice(0));
        });
        assert_eq!(received.recv().unwrap(), Some(BACKGROUND_NICE.max(before)));
    }

    #[tokio::test]
    async fn what_a_low_priority_task_spawns_runs_on_the_main_runtime() {
        let low = LowPriorityRuntime::start().unwrap();
        let thread_name = || std::thread::current().name().map(str::to_owned);
        let (ran_on, spawned_on) = low
            .spawner()
            .spawn(async move {
                (
                    thread_name(),
                    tokio::spawn(async move { thread_name() }).await,
                )
            })
            .await
            .unwrap();
        assert_eq!(ran_on.as_deref(), Some(LOW_PRIORITY_THREAD_NAME));
        assert_eq!(
            spawned_on.unwrap(),
            thread_name(),
            "on the test's own runtime"
        );
    }
}
