// `#[event]` goes on a struct or an enum, not on a union.
#[sente_lite::event("raw/bits")]
pub union Bits {
    pub int: u32,
    pub float: f32,
}

fn main() {}
