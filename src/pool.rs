//! The one worker pool export and import share: one thread per database connection, each
//! taking the next item from a shared queue until none is left or a worker failed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::Error;

/// Runs `work` over `items` with one worker per connection in `conns`. A worker's error
/// sets `failed`, which stops the others before their next item (callers may also read it
/// to stop early inside an item). Returns the results in item order and every worker's
/// error (the first one to occur is the cause; the others follow from it).
pub fn run<C, I, R, F>(
    conns: &mut [C],
    items: Vec<I>,
    failed: &AtomicBool,
    what: &str,
    work: F,
) -> (Vec<R>, Vec<Error>)
where
    C: Send,
    I: Send,
    R: Send,
    F: Fn(&mut C, I) -> crate::Result<R> + Sync,
{
    let queue: Mutex<VecDeque<(usize, I)>> = Mutex::new(items.into_iter().enumerate().collect());
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::new());
    let errors: Vec<Error> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter_mut()
            .map(|conn| {
                let (queue, results, work) = (&queue, &results, &work);
                s.spawn(move || -> crate::Result<()> {
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let next = queue
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .pop_front();
                        let Some((i, item)) = next else {
                            return Ok(());
                        };
                        match work(conn, item) {
                            Ok(r) => results
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((i, r)),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => {
                    failed.store(true, Ordering::Relaxed);
                    Some(Error::Other(format!("an {what} worker crashed")))
                }
            })
            .collect()
    });
    let mut results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    results.sort_by_key(|(i, _)| *i);
    (results.into_iter().map(|(_, r)| r).collect(), errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order_and_a_failure_stops_the_rest() {
        let failed = AtomicBool::new(false);
        let mut conns = vec![0u32, 0, 0];
        let (out, errs) = run(
            &mut conns,
            (0..50).collect(),
            &failed,
            "test",
            |c, i: u32| {
                *c += 1;
                Ok(i * 2)
            },
        );
        assert!(errs.is_empty());
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(conns.iter().sum::<u32>(), 50);

        let failed = AtomicBool::new(false);
        let mut conns = vec![(); 1];
        let (out, errs) = run(
            &mut conns,
            (0..10).collect(),
            &failed,
            "test",
            |_, i: u32| {
                if i == 3 {
                    Err(Error::Other("item 3".into()))
                } else {
                    Ok(i)
                }
            },
        );
        assert_eq!(out, vec![0, 1, 2]);
        assert_eq!(errs.len(), 1);
        assert!(failed.load(Ordering::Relaxed));
    }
}
