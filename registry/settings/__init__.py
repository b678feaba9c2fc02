"""The machinery behind `registry.config`'s settings tree: reading values (`values`), the
Distribution-compatible file format and renamed keys (`distribution`) and the generated reference
(`reference`). The tree itself, and what each setting means, stays in `registry.config`."""
