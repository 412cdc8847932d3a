B
conv1.biasJ0ê9#•£A§?Fø]fv‘?ÄäoÇ?­N…ÉÅ~º¿&V Nwš¿^8Íâ¡¿