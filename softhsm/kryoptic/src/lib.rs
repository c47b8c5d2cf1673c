// Nothing: this package only builds the kryoptic cdylib.
