from pricing import apply_discount, total


def test_ten_percent_off():
    assert apply_discount(200.0, 10) == 180.0


def test_total():
    assert total([1.10, 2.20]) == 3.30
