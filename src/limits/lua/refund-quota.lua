-- Gives one quota unit back to the hourly bucket (KEYS[1]) and the total (KEYS[2]), never
-- below zero.
uncount(KEYS[1])
uncount(KEYS[2])
return 1
