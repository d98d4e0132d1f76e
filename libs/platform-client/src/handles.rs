//! Metric handles made once and kept, for the per-call metrics of clients and servers:
//! recording a call through them takes no registry lookup and allocates no label once
//! its method and status code have been seen.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use tonic::Code;

/// Handles `T` per gRPC status code, each made on the code's first use.
#[derive(Debug)]
pub struct ByCode<T>(RwLock<Vec<(Code, T)>>);

impl<T> Default for ByCode<T> {
    fn default() -> Self {
        Self(RwLock::default())
    }
}

impl<T: Clone> ByCode<T> {
    /// The handles of `code`, made by `make` the first time.
    pub fn get(&self, code: Code, make: impl FnOnce() -> T) -> T {
        let find = |made: &[(Code, T)]| {
            made.iter()
                .find(|(c, _)| *c == code)
                .map(|(_, handles)| handles.clone())
        };
        // Plain handles: a panic while holding the lock leaves them usable.
        if let Some(found) = find(&self.0.read().unwrap_or_else(PoisonError::into_inner)) {
            return found;
        }
        let mut made = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = find(&made) {
            return found;
        }
        let handles = make();
        made.push((code, handles.clone()));
        handles
    }
}

/// Entries `E` per gRPC path (`/package.Service/Method`), each made on the path's
/// first use. A client only calls the methods its code names, but the number kept is
/// bounded anyway: past [`ByPath::MAX`] paths, entries are made per call and not kept.
#[derive(Debug)]
pub struct ByPath<E>(RwLock<HashMap<Box<str>, Arc<E>>>);

impl<E> Default for ByPath<E> {
    fn default() -> Self {
        Self(RwLock::default())
    }
}

impl<E> ByPath<E> {
    /// Paths kept at the most.
    pub const MAX: usize = 512;

    /// The entry of `path`, made by `make` the first time.
    pub fn get(&self, path: &str, make: impl FnOnce() -> E) -> Arc<E> {
        let kept = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = kept.get(path) {
            return Arc::clone(entry);
        }
        drop(kept);
        let mut kept = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = kept.get(path) {
            return Arc::clone(entry);
        }
        let entry = Arc::new(make());
        if kept.len() < Self::MAX {
            kept.insert(path.into(), Arc::clone(&entry));
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_made_once_per_code_and_path() {
        let by_code = ByCode::default();
        let mut made = 0;
        for code in [Code::Ok, Code::NotFound, Code::Ok] {
            by_code.get(code, || {
                made += 1;
                made
            });
        }
        assert_eq!(made, 2);
        assert_eq!(by_code.get(Code::NotFound, || 0), 2);

        let by_path = ByPath::default();
        let first = by_path.get("/a.A/M", || 1);
        assert!(Arc::ptr_eq(&first, &by_path.get("/a.A/M", || 2)));
        for n in 0..ByPath::<u8>::MAX {
            by_path.get(&format!("/p{n}"), || 0);
        }
        let past = by_path.get("/past", || 3);
        assert!(!Arc::ptr_eq(&past, &by_path.get("/past", || 4)), "not kept");
    }
}
