//! Term index: for each leadership term, the position of its first entry in the log.
//! Consensus uses it to find where two members' term histories part (Raft's log matching)
//! and to answer "which term holds position P" without reading the log.
//!
//! It is derived from the entries' term fields, so recovery rebuilds the part after the
//! checkpoint by scanning, and the checkpoint file carries the part before it.

use ordo_core::{Position, Term};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TermIndex {
    /// (term, first position), strictly increasing in both.
    starts: Vec<(Term, Position)>,
}

impl TermIndex {
    /// Notes an entry of `term` at `position`; a new term starts a new row.
    #[inline]
    pub fn observe(&mut self, term: Term, position: Position) {
        match self.starts.last() {
            Some(&(last, start)) if last == term => debug_assert!(start <= position),
            Some(&(last, start)) => {
                debug_assert!(last < term && start < position, "terms and positions only grow");
                self.starts.push((term, position));
            }
            None => self.starts.push((term, position)),
        }
    }

    /// The first position of `term`, if the log holds any entry of it.
    pub fn first_position(&self, term: Term) -> Option<Position> {
        self.starts.iter().find(|(t, _)| *t == term).map(|&(_, p)| p)
    }

    /// The term of the entry at `position` (which must be below the log's end).
    pub fn term_at(&self, position: Position) -> Option<Term> {
        let after = self.starts.partition_point(|&(_, start)| start <= position);
        after.checked_sub(1).map(|i| self.starts[i].0)
    }

    /// The term of the log's last entry.
    pub fn last_term(&self) -> Term {
        self.starts.last().map_or(Term::ZERO, |&(t, _)| t)
    }

    /// Forgets every entry at or after `position` (the log was truncated there).
    pub fn truncate(&mut self, position: Position) {
        let keep = self.starts.partition_point(|&(_, start)| start < position);
        self.starts.truncate(keep);
    }

    pub fn rows(&self) -> &[(Term, Position)] {
        &self.starts
    }

    pub(crate) fn from_rows(rows: Vec<(Term, Position)>) -> Option<Self> {
        let increasing = rows.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
        increasing.then_some(TermIndex { starts: rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> TermIndex {
        let mut index = TermIndex::default();
        for (term, position) in [(1, 0), (1, 96), (2, 192), (2, 256), (5, 512)] {
            index.observe(Term(term), Position(position));
        }
        index
    }

    #[test]
    fn each_term_starts_where_its_first_entry_is() {
        let index = index();
        assert_eq!(index.rows(), &[(Term(1), Position(0)), (Term(2), Position(192)), (Term(5), Position(512))]);
        assert_eq!(index.first_position(Term(2)), Some(Position(192)));
        assert_eq!(index.first_position(Term(3)), None);
        assert_eq!(index.term_at(Position(191)), Some(Term(1)));
        assert_eq!(index.term_at(Position(192)), Some(Term(2)));
        assert_eq!(index.term_at(Position(9999)), Some(Term(5)));
        assert_eq!(index.last_term(), Term(5));
    }

    #[test]
    fn truncation_forgets_terms_that_start_at_or_after_it() {
        let mut index = index();
        index.truncate(Position(512));
        assert_eq!(index.last_term(), Term(2));
        index.truncate(Position(100));
        assert_eq!(index.rows(), &[(Term(1), Position(0))]);
        index.truncate(Position(0));
        assert_eq!(index.last_term(), Term::ZERO);
    }

    #[test]
    fn rows_must_increase() {
        assert!(TermIndex::from_rows(vec![(Term(2), Position(0)), (Term(1), Position(64))]).is_none());
        assert!(TermIndex::from_rows(vec![(Term(1), Position(0)), (Term(2), Position(64))]).is_some());
    }
}
