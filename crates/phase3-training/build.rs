//! Links libtorch (and libtorch_cuda) with an rpath; see `f1-build`.

fn main() {
    f1_build::link_libtorch();
}
