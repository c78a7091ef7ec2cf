"""The Pareto front of cost and quality: dominated options drop out, ties and unknown costs are handled."""

from __future__ import annotations

from changeover.pick.pareto import dominates, pareto_front


def test_cheaper_and_better_dominates_and_either_alone_does_not():
    assert dominates((1.0, [0.1]), (2.0, [0.0]))
    assert dominates((1.0, [0.0]), (2.0, [0.0]))  # same quality, cheaper
    assert dominates((2.0, [0.1]), (2.0, [0.0]))  # same cost, better
    assert not dominates((1.0, [-0.1]), (2.0, [0.0]))  # cheaper but worse: a trade-off
    assert not dominates((2.0, [0.0]), (1.0, [0.0]))


def test_the_front_keeps_the_trade_offs_and_drops_the_dominated():
    options = [
        (10_000.0, [0.0]),  # the incumbent: dearer than 'cheap' and no better -> dominated
        (4_000.0, [0.086]),  # 'dear': best quality -> front
        (90.0, [0.005]),  # 'cheap': cheapest -> front
        (996.0, [-0.36]),  # 'broken': dearer and worse than 'cheap' -> dominated
    ]
    assert pareto_front(options) == [False, True, True, False]


def test_every_dimension_counts():
    # better on one dimension and worse on the other: nobody dominates
    assert pareto_front([(1.0, [0.1, -0.2]), (1.0, [-0.1, 0.2])]) == [True, True]
    # worse on one dimension, equal elsewhere, same cost: dominated
    assert pareto_front([(1.0, [0.1, 0.0]), (1.0, [0.1, -0.1])]) == [True, False]


def test_identical_options_both_stay_on_the_front():
    assert pareto_front([(5.0, [0.02]), (5.0, [0.02]), (6.0, [0.01])]) == [True, True, False]


def test_an_unknown_cost_is_never_on_the_front_and_dominates_nothing():
    assert pareto_front([(None, [0.5]), (3.0, [0.0]), (4.0, [0.1])]) == [False, True, True]
    assert pareto_front([]) == []
