DROP TABLE challenge_flag;
