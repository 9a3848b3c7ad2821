//! The pool's tables (`schema/0004_pool.sql`, `0005_pool_replication.sql`), one file per aggregate: the
//! scheduler's deals and tasks, the workers and their sessions, the replicates, the result archives, the
//! timeline, and the views of the status API. Functions take a client or a transaction; ids are stored as raw
//! bytes. Callers use them as `store::<function>`, whichever file holds it.

mod deals;
mod members;
mod replicates;
mod results;
mod row;
mod timeline;
mod views;

pub use deals::{
    NewDeal, OpenTask, cursor, insert_deal, open_tasks, set_cursor, set_replicates_wanted, set_task_results,
    set_task_status,
};
pub use members::{busy_replicates, insert_session, reset_proven, session, touch_worker, upsert_worker};
pub use replicates::{
    Handed, apply_report, callback_of, claim_task, close_replicates, live_workers, mark_replicate, outvote_replicates,
    record_contribution, reject_replicates, replicate_status, silent_replicates, stalled_replicates,
    unfinished_replicate, upload_context,
};
pub use results::{has_result, put_result, result_zip, uploaded_digest};
pub use timeline::{EventView, events};
pub use views::{
    ALIVE_SECS, ReplicateView, TaskView, WorkerView, replicates, task_counts, tasks, worker_slots, workers,
    workers_within,
};
