-- One database per service (DESIGN.md: "one database per service").
CREATE DATABASE keys;
CREATE DATABASE spaces;
CREATE DATABASE sfu;
CREATE DATABASE webhooks;
