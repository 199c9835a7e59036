-- One database per demo node (deploy/compose/compose.yaml).
CREATE DATABASE utrecht OWNER sluis;
CREATE DATABASE amsterdam OWNER sluis;
CREATE DATABASE rotterdam OWNER sluis;
