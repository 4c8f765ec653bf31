"""Operations: the admin API, operator actions, bulk retry, maintenance windows, logins."""
