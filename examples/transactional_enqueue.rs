//! Transactional enqueue: an application keeps its own table in the queue's SQLite file and
//! enqueues a job in the same transaction as its own write, so the job exists if and only if
//! the write commits. Then a worker pool runs the committed jobs.
//!
//! Run: `cargo run --example transactional_enqueue`

use queuectl::sqlite::enqueue_tx;
use queuectl::sqlite::rusqlite::{self, params, Connection, TransactionBehavior};
use queuectl::{ExecContext, Home, Job, JobSpec, Outcome, PoolBuilder, Queue, Shutdown, State};
use serde_json::json;
use std::path::Path;

/// Places an order and enqueues its receipt in one transaction. An order for nothing is refused
/// after both writes were made: the rollback takes back the order row and the job alike.
fn place_order(conn: &mut Connection, item: &str, quantity: i64) -> Result<String, Box<dyn std::error::Error>> {
    // IMMEDIATE: take the write lock now rather than fail to upgrade a read later.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO orders (item, quantity, receipt_sent) VALUES (?1, ?2, 0)",
        params![item, quantity],
    )?;
    let order = tx.last_insert_rowid();
    let job = enqueue_tx(&tx, JobSpec::kind("send_receipt", json!({ "order": order })))?;
    if quantity <= 0 {
        tx.rollback()?;
        return Err(format!("order for {quantity} × {item} refused").into());
    }
    tx.commit()?; // the order and its receipt job, together
    Ok(job)
}

/// The `send_receipt` executor: reads the order from the application's table and marks it.
fn send_receipt(db: &Path, job: &Job) -> Outcome {
    let Some(order) = job.payload.as_ref().and_then(|p| p["order"].as_i64()) else {
        return Outcome::failure("payload field `order` must be an integer");
    };
    let result = (|| -> rusqlite::Result<String> {
        let conn = Connection::open(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let item: String = conn.query_row("SELECT item FROM orders WHERE id = ?1", [order], |r| r.get(0))?;
        conn.execute("UPDATE orders SET receipt_sent = 1 WHERE id = ?1", [order])?;
        Ok(item)
    })();
    match result {
        Ok(item) => Outcome::success().with_output(format!("receipt for order {order} ({item}) sent"), ""),
        Err(e) => Outcome::failure(format!("order {order}: {e}")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let home = Home::new(temp.path());
    let (queue, _) = Queue::init(&home)?;
    let db = temp.path().join("queue.db");

    // The application's own connection and table, in the queue's file (queuectl's tables are
    // all named `queuectl_*`).
    let mut conn = Connection::open(&db)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS orders (
             id INTEGER PRIMARY KEY, item TEXT NOT NULL, quantity INTEGER NOT NULL, receipt_sent INTEGER NOT NULL
         )",
    )?;

    let lamp = place_order(&mut conn, "lamp", 1)?;
    let books = place_order(&mut conn, "book", 3)?;
    match place_order(&mut conn, "chair", 0) {
        Ok(_) => unreachable!("an empty order is refused"),
        Err(e) => println!("{e}: no order row, no job"),
    }

    let db_for_pool = db.clone();
    let ran = PoolBuilder::new(&home)
        .threads(2)
        .shell_hooks(false)
        .executor("send_receipt", move |job: &Job, _: &ExecContext| {
            send_receipt(&db_for_pool, job)
        })
        .until_empty(true)
        .run(&Shutdown::new())?;
    println!("the pool ran {ran} jobs");

    for id in [&lamp, &books] {
        let job = queue.get(id)?;
        assert_eq!(job.state, State::Completed);
        println!("{}", job.stdout.unwrap_or_default());
    }
    let (orders, sent): (i64, i64) = conn.query_row("SELECT count(*), sum(receipt_sent) FROM orders", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    assert_eq!((orders, sent), (2, 2));
    assert_eq!(queue.list(None, None)?.len(), 2, "the refused order left no job");
    Ok(())
}
