"""What the devices compute: the train and eval steps, SGD and its schedules, the network in its dtype, the weight
EMA and precise batch norm."""
