DROP TABLE setting;
DROP TABLE node;
