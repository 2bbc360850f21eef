//! The adapter behind [`PoolBuilder::job`](crate::PoolBuilder::job): a typed handler as an
//! [`Executor`].

use super::{ExecContext, Executor, Outcome};
use crate::job::{Job, JobArgs};
use std::marker::PhantomData;

/// Runs a handler `Fn(A, &ExecContext) -> Outcome` on jobs of kind `A::KIND`: reads the
/// payload as `A` first, and fails the attempt naming the field when it does not fit (the
/// retry policy then decides, so a payload written by a newer producer can wait for the
/// handler that reads it).
pub(crate) struct TypedExecutor<A, F> {
    handler: F,
    args: PhantomData<fn() -> A>,
}

impl<A, F> TypedExecutor<A, F> {
    pub(crate) fn new(handler: F) -> Self {
        TypedExecutor {
            handler,
            args: PhantomData,
        }
    }
}

impl<A, F> Executor for TypedExecutor<A, F>
where
    A: JobArgs,
    F: Fn(A, &ExecContext) -> Outcome + Send + Sync,
{
    fn execute(&self, job: &Job, context: &ExecContext) -> Outcome {
        match job.args::<A>() {
            Ok(args) => (self.handler)(args, context),
            Err(e) => Outcome::failure(e.to_string()),
        }
    }
}
