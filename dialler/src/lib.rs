//! voxdialler, the Vox outbound dialler. Today it holds the pacing core — how many
//! calls each campaign starts per tick ([`pacing`]) — and the pacing benchmark that
//! runs that same code against a discrete-event model of a carrier on a virtual clock
//! ([`bench`], `voxctl bench pacing`). The tick loop, leasing and providers come next
//! and call into [`pacing`].

pub mod bench;
pub mod pacing;
