//! Linearizability of the clients' history: is there one order of the operations, each
//! taking effect at one instant between its invocation and its answer, in which a
//! sequential model gives every answer the clients saw? The search is Wing and Gong's, as
//! Lowe improved it ("Testing for linearizability", 2017; Knossos and Porcupine search the
//! same way): walk the invocations and answers in time order, take an operation into the
//! order at its invocation when the model allows its answer there, back off at an answer
//! whose operation is not taken yet, and never revisit a (set taken, state) pair. It is
//! exponential at worst, so it has a bound of steps; past it the history is undecided.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;

/// The object the operations act on, one at a time.
pub(crate) trait Model {
    type State: Clone + Eq + Hash;
    type Op: Clone + Eq + Hash + Debug;
    type Out: Debug;
    fn init(&self) -> Self::State;
    /// The state after `op` in `state`, if `op` can answer `out` there; `out` is `None` for
    /// an operation whose answer never came (any answer will do, and it may never have taken
    /// effect: it can also be left out of the order).
    fn step(&self, state: &Self::State, op: &Self::Op, out: Option<&Self::Out>) -> Option<Self::State>;
}

/// A counter every operation increments, answering the count it made.
pub(crate) struct Counter {
    /// The count before the history (a cluster restored from a snapshot goes on from the
    /// snapshot's).
    pub(crate) from: u64,
}

impl Model for Counter {
    type State = u64;
    type Op = ();
    type Out = u64;
    fn init(&self) -> u64 {
        self.from
    }
    fn step(&self, count: &u64, _: &(), out: Option<&u64>) -> Option<u64> {
        let next = count + 1;
        out.is_none_or(|&answered| answered == next).then_some(next)
    }
}

/// One operation of a client.
#[derive(Clone, Debug)]
pub(crate) struct Operation<Op, Out> {
    pub(crate) client: u64,
    pub(crate) op: Op,
    pub(crate) invoked_ns: u64,
    /// When its answer came and what it said; `None` if none came, or it could not say
    /// (the operation may or may not have taken effect).
    pub(crate) answered: Option<(u64, Out)>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Linearizable,
    /// Not linearizable, and neither is the shortest prefix of the history that ends at
    /// `until_ns` (the operations invoked by then; an answer after it counts as not come):
    /// these are its operations' indices, in invocation order.
    Violation {
        until_ns: u64,
        operations: Vec<usize>,
    },
    /// The search took more than its bound of steps.
    Undecided,
}

/// Whether `history` is linearizable under `model`, searching at most `steps_max` steps (for
/// each prefix tried, when it is not: the shortest failing prefix is found by bisection,
/// since a history with a non-linearizable prefix is not linearizable either).
pub(crate) fn check<M: Model>(model: &M, history: &[Operation<M::Op, M::Out>], steps_max: u64) -> Verdict
where
    M::Out: Clone,
{
    match search(model, history, steps_max) {
        Outcome::Linearizable => return Verdict::Linearizable,
        Outcome::Undecided => return Verdict::Undecided,
        Outcome::Violation => {}
    }
    // The answer times, each a candidate end of the shortest failing prefix.
    let mut ends: Vec<u64> = history.iter().filter_map(|op| Some(op.answered.as_ref()?.0)).collect();
    ends.sort_unstable();
    ends.dedup();
    let (mut low, mut high) = (0, ends.len().saturating_sub(1)); // the whole history fails
    while low < high {
        let middle = (low + high) / 2;
        let (_, operations) = prefix_until(history, ends[middle]);
        if search(model, &operations, steps_max) == Outcome::Violation {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    let until_ns = ends.get(low).copied().unwrap_or(u64::MAX);
    Verdict::Violation { until_ns, operations: prefix_until(history, until_ns).0 }
}

/// The operations invoked by `until_ns` (their indices, in invocation order, and the
/// operations), an answer after it taken for one not come.
fn prefix_until<Op: Clone, Out: Clone>(
    history: &[Operation<Op, Out>],
    until_ns: u64,
) -> (Vec<usize>, Vec<Operation<Op, Out>>) {
    let mut indices: Vec<usize> = (0..history.len()).filter(|&i| history[i].invoked_ns <= until_ns).collect();
    indices.sort_by_key(|&i| (history[i].invoked_ns, i));
    let operations = indices
        .iter()
        .map(|&i| {
            let mut op = history[i].clone();
            op.answered = op.answered.filter(|(at_ns, _)| *at_ns <= until_ns);
            op
        })
        .collect();
    (indices, operations)
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Linearizable,
    Violation,
    Undecided,
}

/// An invocation or an answer, in the time-ordered list the search walks.
#[derive(Clone, Copy)]
struct Event {
    operation: usize,
    /// The operation's answer event, for an invocation.
    answer: Option<usize>,
}

/// Wing and Gong's search, with Lowe's cache. Two refinements: an invocation sorts before an
/// answer at the same instant (they are taken as concurrent, so no order is demanded that the
/// clients could not see), and of operations that are alike and unanswered, the search takes
/// them in invocation order only (any order of them is as good as another: they can trade
/// places), which keeps many unanswered increments from multiplying the search.
fn search<M: Model>(model: &M, history: &[Operation<M::Op, M::Out>], steps_max: u64) -> Outcome {
    let n = history.len();
    // Events 0..2n; the list's head and tail are 2n and 2n+1.
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in history.iter().enumerate() {
        order.push((op.invoked_ns, false, i));
        order.push((op.answered.as_ref().map_or(u64::MAX, |a| a.0), true, i));
    }
    order.sort_unstable();
    let mut events = vec![Event { operation: 0, answer: None }; 2 * n];
    let mut answer_of = vec![0; n];
    for (e, &(_, is_answer, i)) in order.iter().enumerate() {
        events[e].operation = i;
        if is_answer {
            answer_of[i] = e;
        }
    }
    for (e, &(_, is_answer, i)) in order.iter().enumerate() {
        if !is_answer {
            events[e].answer = Some(answer_of[i]);
        }
    }
    // Each unanswered operation's alike unanswered predecessor, to take before it.
    let mut before: Vec<Option<usize>> = vec![None; n];
    let mut last_alike: HashMap<&M::Op, usize> = HashMap::new();
    for &(_, is_answer, i) in &order {
        if !is_answer && history[i].answered.is_none() {
            before[i] = last_alike.insert(&history[i].op, i);
        }
    }
    let (head, tail) = (2 * n, 2 * n + 1);
    let (mut next, mut prev) = (vec![tail; 2 * n + 2], vec![head; 2 * n + 2]);
    let chain: Vec<usize> = std::iter::once(head).chain(0..2 * n).chain(std::iter::once(tail)).collect();
    for pair in chain.windows(2) {
        next[pair[0]] = pair[1];
        prev[pair[1]] = pair[0];
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        next[prev[e]] = next[e];
        prev[next[e]] = prev[e];
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        next[prev[e]] = e;
        prev[next[e]] = e;
    };

    let mut state = model.init();
    let mut taken = vec![0u64; n.div_ceil(64)];
    let is_taken = |taken: &[u64], i: usize| taken[i / 64] & (1 << (i % 64)) != 0;
    let mut seen: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut entry = next[head];
    let mut steps = 0u64;
    while next[head] != tail {
        steps += 1;
        if steps > steps_max {
            return Outcome::Undecided;
        }
        debug_assert!(entry != tail, "the list ends with an answer");
        let event = events[entry];
        let i = event.operation;
        let Some(answer) = event.answer else {
            // An answer of an operation not taken: the order so far cannot go on; back off.
            let Some((call, previous)) = stack.pop() else { return Outcome::Violation };
            let i = events[call].operation;
            taken[i / 64] &= !(1 << (i % 64));
            state = previous;
            relink(&mut next, &mut prev, events[call].answer.expect("an invocation"));
            relink(&mut next, &mut prev, call);
            entry = next[call];
            continue;
        };
        let op = &history[i];
        let in_turn = before[i].is_none_or(|b| is_taken(&taken, b));
        let stepped = if in_turn { model.step(&state, &op.op, op.answered.as_ref().map(|a| &a.1)) } else { None };
        if let Some(after) = stepped {
            taken[i / 64] |= 1 << (i % 64);
            if seen.insert((taken.clone(), after.clone())) {
                stack.push((entry, std::mem::replace(&mut state, after)));
                unlink(&mut next, &mut prev, entry);
                unlink(&mut next, &mut prev, answer);
                entry = next[head];
                continue;
            }
            taken[i / 64] &= !(1 << (i % 64));
        }
        entry = next[entry];
    }
    Outcome::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An increment invoked at `invoked` and answered `count` at `answered` (or never).
    fn inc(client: u64, invoked: u64, answered: Option<(u64, u64)>) -> Operation<(), u64> {
        Operation { client, op: (), invoked_ns: invoked, answered }
    }

    #[test]
    fn concurrent_increments_may_take_effect_in_either_order() {
        let history = [inc(0, 0, Some((10, 2))), inc(1, 1, Some((9, 1)))];
        assert_eq!(check(&Counter { from: 0 }, &history, 1000), Verdict::Linearizable);
    }

    #[test]
    fn an_increment_answered_before_another_began_cannot_see_its_count() {
        // The second began after the first was answered 2, yet answered 1.
        let history = [inc(0, 0, Some((5, 2))), inc(1, 6, Some((9, 1)))];
        let Verdict::Violation { until_ns, operations } = check(&Counter { from: 0 }, &history, 1000) else { panic!() };
        assert_eq!((until_ns, operations), (5, vec![0]), "the first alone already fails: no count 1 before it");
    }

    #[test]
    fn the_shortest_failing_prefix_holds_both_sides_of_the_conflict() {
        // Both answered 1, one after the other.
        let history = [inc(0, 0, Some((5, 1))), inc(1, 6, Some((9, 1))), inc(0, 10, Some((12, 2)))];
        let Verdict::Violation { until_ns, operations } = check(&Counter { from: 0 }, &history, 1000) else { panic!() };
        assert_eq!((until_ns, operations), (9, vec![0, 1]));
    }

    #[test]
    fn an_increment_applied_twice_shows_as_a_count_skipped() {
        // Count 2 is nobody's: one operation took effect twice.
        let history = [inc(0, 0, Some((5, 1))), inc(0, 6, Some((9, 3))), inc(1, 10, Some((12, 4)))];
        let Verdict::Violation { until_ns, .. } = check(&Counter { from: 0 }, &history, 1000) else { panic!() };
        assert_eq!(until_ns, 9, "the shortest failing prefix ends at the answer 3");
    }

    #[test]
    fn an_unanswered_increment_may_or_may_not_have_taken_effect() {
        let took_effect = [inc(0, 0, None), inc(1, 5, Some((9, 2)))];
        let did_not = [inc(0, 0, None), inc(1, 5, Some((9, 1)))];
        assert_eq!(check(&Counter { from: 0 }, &took_effect, 1000), Verdict::Linearizable);
        assert_eq!(check(&Counter { from: 0 }, &did_not, 1000), Verdict::Linearizable);
        // But not before it was invoked.
        let too_early = [inc(1, 0, Some((4, 2))), inc(0, 5, None)];
        assert!(matches!(check(&Counter { from: 0 }, &too_early, 1000), Verdict::Violation { .. }));
    }

    #[test]
    fn many_unanswered_increments_do_not_multiply_the_search() {
        // Forty unanswered, then an answer that needs exactly twenty of them before it.
        let mut history: Vec<_> = (0..40).map(|k| inc(0, k, None)).collect();
        history.push(inc(1, 100, Some((110, 21))));
        assert_eq!(check(&Counter { from: 0 }, &history, 10_000), Verdict::Linearizable);
    }

    #[test]
    fn a_search_past_its_bound_is_undecided() {
        let history: Vec<_> = (0..10).map(|k| inc(k, 0, Some((100, k + 1)))).collect();
        assert_eq!(check(&Counter { from: 0 }, &history, 3), Verdict::Undecided);
        assert_eq!(check(&Counter { from: 0 }, &history, 10_000), Verdict::Linearizable);
    }

    #[test]
    fn an_empty_history_is_linearizable() {
        assert_eq!(check(&Counter { from: 0 }, &[], 10), Verdict::Linearizable);
    }

    #[test]
    fn a_restored_counter_goes_on_from_its_snapshots_count() {
        let history = [inc(0, 0, Some((5, 101))), inc(1, 6, Some((9, 102)))];
        assert_eq!(check(&Counter { from: 100 }, &history, 1000), Verdict::Linearizable);
        let from_zero = [inc(0, 0, Some((5, 1)))];
        assert!(matches!(check(&Counter { from: 100 }, &from_zero, 1000), Verdict::Violation { .. }));
    }
}
