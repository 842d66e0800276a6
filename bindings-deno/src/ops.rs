//! Numbered operations: JS calls a handle's method by its number (one export per handle kind,
//! not one per method). The numbers are the order of the variants, mirrored in jsr/native.ts.

/// Operation numbers: the order of the variants, mirrored in jsr/native.ts.
macro_rules! numbered_ops {
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($variant:ident => $js:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn from_code(code: u32) -> $crate::error::FfiResult<$name> {
                Self::ALL
                    .get(code as usize)
                    .copied()
                    .ok_or($crate::error::FfiError::UnknownOp { kind: $kind, code })
            }

            /// The JS method name (for argument errors).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $js),+
                }
            }
        }
    };
}

pub(crate) use numbered_ops;
