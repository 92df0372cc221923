//! The in-memory creator profiles the bio pages are built from, like the code
//! table: a map behind an `ArcSwap`, replaced whole on a reload and copied on
//! a write (profile writes are rare). The bio page reads it and never a store.

use arc_swap::ArcSwap;
use codelink_shared::OwnerProfile;
use std::collections::HashMap;
use std::sync::Arc;

pub type ProfileSnapshot = HashMap<String, Arc<OwnerProfile>>;

#[derive(Default)]
pub struct ProfileTable {
    current: ArcSwap<ProfileSnapshot>,
}

impl ProfileTable {
    pub fn get(&self, owner: &str) -> Option<Arc<OwnerProfile>> {
        self.current.load().get(owner).cloned()
    }

    pub fn snapshot(&self) -> Arc<ProfileSnapshot> {
        self.current.load_full()
    }

    /// Replaces every profile (start-up, Redis reload).
    pub fn replace_all(&self, profiles: Vec<OwnerProfile>) {
        let map = profiles
            .into_iter()
            .map(|p| (p.owner.clone(), Arc::new(p)))
            .collect();
        self.current.store(Arc::new(map));
    }

    /// Inserts or replaces one profile (after an API write).
    pub fn upsert(&self, profile: OwnerProfile) {
        let profile = Arc::new(profile);
        self.current.rcu(|old| {
            let mut map = HashMap::clone(old);
            map.insert(profile.owner.clone(), profile.clone());
            map
        });
    }

    pub fn remove(&self, owner: &str) {
        self.current.rcu(|old| {
            let mut map = HashMap::clone(old);
            map.remove(owner);
            map
        });
    }
}
