//! What a step may wait for, and the compile-time checks that a step's arguments are what
//! its parents return.
//!
//! Each check is a trait implemented only when two types are the same, so that a mismatch
//! is an unimplemented trait, reported with a message that names the job types and the
//! types on both sides (`#[diagnostic::on_unimplemented]`), rather than a type mismatch
//! deep in a projection.

use jobs_core::{BatchSummary, JobId, JobType};

use super::Step;

mod sealed {
    /// Keeps the traits of this module to the implementations given here.
    pub trait Sealed {}

    /// Holds only when `Self` is `T`: the bound under every check, so that no other
    /// implementation of a check can be written.
    pub trait Same<T> {}
    impl<T> Same<T> for T {}
}

use sealed::{Same, Sealed};

/// The parents of a step that runs with arguments of its own ([`Flow::after`]) or with a
/// [`BatchSummary`] ([`Flow::callback`]): steps of any job types, in any mix.
///
/// Implemented for a step (`&Step<J>`), a slice, array or `Vec` of steps of one type, a
/// [`JobId`] (a job stored already, or a job added to the flow with [`Flow::add_job`]) and
/// a slice or `Vec` of them, and tuples of up to eight of any of these:
/// `(&fetch, &shards, stored_id)`.
///
/// [`Flow::after`]: super::Flow::after
/// [`Flow::callback`]: super::Flow::callback
/// [`Flow::add_job`]: super::Flow::add_job
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the parents of a step",
    label = "the parents of a step",
    note = "parents are a step (`&Step<J>`), a slice, array or `Vec` of steps of one type, a `JobId`, a slice or `Vec` of `JobId`s, or a tuple of up to eight of these"
)]
pub trait Parents: Sealed {
    /// Appends the ids of these parents to `ids`, in order.
    fn push_ids(&self, ids: &mut Vec<JobId>);
}

/// Steps whose outputs, together, a step added with [`Flow::join`](super::Flow::join) runs
/// with, in order:
///
/// - steps of one type `P` (a `Vec` or array of `Step<P>`, or a reference to a slice,
///   `Vec` or array of them): their outputs make a `Vec<P::Output>`;
/// - a tuple of references to steps of up to eight types, `(&Step<A>, &Step<B>)`: their
///   outputs make a tuple, `(A::Output, B::Output)`.
pub trait JoinedSteps: Parents {
    /// The job types of the steps, as an error names them: `[P]` for steps of one type,
    /// `(A, B)` for a tuple.
    type JobTypes: ?Sized;
    /// What their outputs make: `Vec<P::Output>`, or `(A::Output, B::Output)`.
    type Outputs;
}

/// Parents whose outputs, together, are the arguments of a step of type `M`: the
/// [`JoinedSteps`] whose outputs are `M`'s arguments.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the parents of a `join`",
    label = "the parents of `{M}`",
    note = "`join` takes steps of one type (a `Vec` or array of `Step<P>`, or a reference to a slice, `Vec` or array of them) or a tuple of references to steps (`(&Step<A>, &Step<B>)`); for one parent, use `then`"
)]
pub trait JoinParents<M: JobType>: JoinedSteps {}

impl<T: JoinedSteps + ?Sized, M: JobType> JoinParents<M> for T where
    T::Outputs: OutputsAreArgs<M::Args, T::JobTypes, M>
{
}

/// A job type whose output is the arguments of a job type `C`: the parent of a step added
/// with [`Flow::then`](super::Flow::then).
pub trait Feeds<C: JobType>: JobType {}

impl<P: JobType, C: JobType> Feeds<C> for P where P::Output: OutputIsArgs<C::Args, P, C> {}

/// The check behind [`Flow::then`](super::Flow::then): implemented when `Self`, the output
/// of the job type `Parent`, is `Args`, the arguments of the job type `Child`.
#[diagnostic::on_unimplemented(
    message = "`{Child}` cannot run with the output of `{Parent}`: `{Parent}` returns `{Self}`, `{Child}` takes `{Args}`",
    label = "`{Parent}` returns `{Self}`, not the `{Args}` that `{Child}` takes",
    note = "a step added with `then` runs with its parent's output, so its argument type must be the parent's output type",
    note = "to run `{Child}` with arguments of its own once `{Parent}` has finished, add it with `after`"
)]
pub trait OutputIsArgs<Args, Parent, Child>: Same<Args> {}

impl<T, Parent, Child> OutputIsArgs<T, Parent, Child> for T {}

/// The check behind [`Flow::join`](super::Flow::join): implemented when `Self`, what the
/// outputs of steps of the job types `Parents` make, is `Args`, the arguments of the job
/// type `Child`.
#[diagnostic::on_unimplemented(
    message = "`{Child}` cannot join the outputs of `{Parents}`: they make `{Self}`, `{Child}` takes `{Args}`",
    label = "the outputs of these steps make `{Self}`, not the `{Args}` that `{Child}` takes",
    note = "a step added with `join` runs with its parents' outputs, in order: a `Vec<T>` of the outputs of steps that return `T`, or a tuple of the outputs of a tuple of steps"
)]
pub trait OutputsAreArgs<Args, Parents: ?Sized, Child>: Same<Args> {}

impl<T, Parents: ?Sized, Child> OutputsAreArgs<T, Parents, Child> for T {}

/// The check behind [`Flow::callback`](super::Flow::callback) and
/// [`Batch::callback`](super::Batch::callback): implemented when `Self`, the arguments of
/// the job type `Child`, are a [`BatchSummary`].
#[diagnostic::on_unimplemented(
    message = "`{Child}` cannot be the callback of a batch: it takes `{Self}`, not `BatchSummary`",
    label = "`{Child}` takes `{Self}`",
    note = "a callback runs with a `BatchSummary` of the members that succeeded, failed and were canceled: declare its argument as `jobs::BatchSummary`"
)]
pub trait ArgsAreBatchSummary<Child>: Same<BatchSummary> {}

impl<Child> ArgsAreBatchSummary<Child> for BatchSummary {}

impl<J> Sealed for Step<J> {}
impl<J> Parents for Step<J> {
    fn push_ids(&self, ids: &mut Vec<JobId>) {
        ids.push(self.id());
    }
}

impl<J> Sealed for [Step<J>] {}
impl<J> Parents for [Step<J>] {
    fn push_ids(&self, ids: &mut Vec<JobId>) {
        ids.extend(self.iter().map(Step::id));
    }
}

impl<J> Sealed for Vec<Step<J>> {}
impl<J> Parents for Vec<Step<J>> {
    fn push_ids(&self, ids: &mut Vec<JobId>) {
        self.as_slice().push_ids(ids);
    }
}

impl<J, const N: usize> Sealed for [Step<J>; N] {}
impl<J, const N: usize> Parents for [Step<J>; N] {
    fn push_ids(&self, ids: &mut Vec<JobId>) {
        self.as_slice().push_ids(ids);
    }
}

impl Sealed for JobId {}
impl Parents for JobId {
    fn push_ids(&self, ids: &mut Vec<JobId>) {
        ids.push(*self);
    }
}

impl Sealed for [JobId] {}
impl Parents for [JobId] {
    fn push_ids(&self, ids: &mut Vec<JobId>) {
        ids.extend_from_slice(self);
    }
}

impl Sealed for Vec<JobId> {}
impl Parents for Vec<JobId> {
    fn push_ids(&self, ids: &mut Vec<JobId>) {
        ids.extend_from_slice(self);
    }
}

impl<T: Parents + ?Sized> Sealed for &T {}
impl<T: Parents + ?Sized> Parents for &T {
    fn push_ids(&self, ids: &mut Vec<JobId>) {
        (**self).push_ids(ids);
    }
}

impl<P: JobType> JoinedSteps for &[Step<P>] {
    type JobTypes = [P];
    type Outputs = Vec<P::Output>;
}

impl<P: JobType> JoinedSteps for &Vec<Step<P>> {
    type JobTypes = [P];
    type Outputs = Vec<P::Output>;
}

impl<P: JobType> JoinedSteps for Vec<Step<P>> {
    type JobTypes = [P];
    type Outputs = Vec<P::Output>;
}

impl<P: JobType, const N: usize> JoinedSteps for [Step<P>; N] {
    type JobTypes = [P];
    type Outputs = Vec<P::Output>;
}

impl<P: JobType, const N: usize> JoinedSteps for &[Step<P>; N] {
    type JobTypes = [P];
    type Outputs = Vec<P::Output>;
}

/// Tuples: of any parents for [`Parents`], of steps for [`JoinedSteps`].
macro_rules! tuples {
    ($(($($name:ident $index:tt),+))+) => {$(
        impl<$($name: Parents),+> Sealed for ($($name,)+) {}
        impl<$($name: Parents),+> Parents for ($($name,)+) {
            fn push_ids(&self, ids: &mut Vec<JobId>) {
                $(self.$index.push_ids(ids);)+
            }
        }
        // Left out of the list of what `join` takes that an error shows: the note says it.
        #[diagnostic::do_not_recommend]
        impl<$($name: JobType),+> JoinedSteps for ($(&Step<$name>,)+) {
            type JobTypes = ($($name,)+);
            type Outputs = ($($name::Output,)+);
        }
    )+};
}

tuples! {
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4)
    (A 0, B 1, C 2, D 3, E 4, F 5)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
}
