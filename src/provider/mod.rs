//! The editors' own chat storage ("remote" in sync terms). Only VS Code so far.

pub mod vscode;
