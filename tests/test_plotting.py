"""experiments.plotting.save: PNGs that redraw byte for byte, and whole epochs on epoch axes."""

from experiments.plotting import plt, save


def two_epoch_figure():
    fig, a = plt.subplots()
    a.plot([1, 2], [3.0, 2.5])
    a.set(xlabel="epoch", ylabel="cost")
    return fig, a


def test_a_redrawn_figure_has_the_same_bytes_and_no_version_stamp(tmp_path):
    first, second = save(two_epoch_figure()[0], tmp_path / "a.png"), save(two_epoch_figure()[0],
                                                                          tmp_path / "b.png")
    assert first.read_bytes() == second.read_bytes()
    assert b"matplotlib" not in first.read_bytes()  # no "Software: Matplotlib version …" chunk


def test_epoch_axes_get_whole_number_ticks(tmp_path):
    fig, a = two_epoch_figure()
    save(fig, tmp_path / "a.png")
    ticks = [t for t in a.get_xticks() if 1 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks)
