//! The in-memory creator profiles the bio pages are built from, like the code
//! table: a map behind an `ArcSwap`, replaced whole on a reload and copied on
//! a write (profile writes are rare). The bio page reads it and never a store.
//!
//! Beside it, each owner's default QR logo, decoded: the QR handler draws it
//! on the owner's codes that have no logo of their own, reading only this.

use crate::qr_logo::Logo;
use arc_swap::ArcSwap;
use codelink_shared::OwnerProfile;
use std::collections::HashMap;
use std::sync::Arc;

pub type ProfileSnapshot = HashMap<String, Arc<OwnerProfile>>;

#[derive(Default)]
pub struct ProfileTable {
    current: ArcSwap<ProfileSnapshot>,
    /// Owner → their decoded QR logo (only owners whose profile names a
    /// logo this instance has loaded).
    logos: ArcSwap<HashMap<String, Arc<Logo>>>,
}

impl ProfileTable {
    pub fn get(&self, owner: &str) -> Option<Arc<OwnerProfile>> {
        self.current.load().get(owner).cloned()
    }

    pub fn snapshot(&self) -> Arc<ProfileSnapshot> {
        self.current.load_full()
    }

    /// The owner's QR logo, decoded; `None` when their profile names none
    /// (or names one this instance could not load).
    pub fn logo_of(&self, owner: &str) -> Option<Arc<Logo>> {
        self.logos.load().get(owner).cloned()
    }

    /// Replaces every profile (start-up, Redis reload); `decoded` finds a
    /// loaded logo by SHA-256.
    pub fn replace_all(
        &self,
        profiles: Vec<OwnerProfile>,
        decoded: impl Fn(&str) -> Option<Arc<Logo>>,
    ) {
        let mut logos = HashMap::new();
        for p in &profiles {
            if let Some(named) = &p.qr_logo {
                match decoded(&named.sha256) {
                    Some(logo) => {
                        logos.insert(p.owner.clone(), logo);
                    }
                    None => tracing::warn!(owner = %p.owner, sha256 = %named.sha256,
                        "owner logo not loaded; their QR images drawn without it"),
                }
            }
        }
        let map = profiles
            .into_iter()
            .map(|p| (p.owner.clone(), Arc::new(p)))
            .collect();
        self.current.store(Arc::new(map));
        self.logos.store(Arc::new(logos));
    }

    /// Inserts or replaces one profile (after an API write), with its logo
    /// decoded when it names one (`logo`, if it is the one named, else the
    /// one held for the owner if it is the same).
    pub fn upsert(&self, profile: OwnerProfile, logo: Option<Arc<Logo>>) {
        let named = profile.qr_logo.as_ref().map(|l| l.sha256.clone());
        let owner = profile.owner.clone();
        let profile = Arc::new(profile);
        self.current.rcu(|old| {
            let mut map = HashMap::clone(old);
            map.insert(profile.owner.clone(), profile.clone());
            map
        });
        self.logos.rcu(|old| {
            let mut map = HashMap::clone(old);
            let held = map.remove(&owner);
            let keep = logo
                .clone()
                .into_iter()
                .chain(held)
                .find(|l| Some(&l.sha256) == named.as_ref());
            if let Some(l) = keep {
                map.insert(owner.clone(), l);
            }
            map
        });
    }

    pub fn remove(&self, owner: &str) {
        self.current.rcu(|old| {
            let mut map = HashMap::clone(old);
            map.remove(owner);
            map
        });
        self.logos.rcu(|old| {
            let mut map = HashMap::clone(old);
            map.remove(owner);
            map
        });
    }
}
