"""A batch job: count ``range(N)`` and write the count to OUT; ``fail`` as N raises in the driver."""

import sys

from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("count").getOrCreate()
if sys.argv[1] == "fail":
    spark.sql("SELECT * FROM no_such_table").collect()
n = spark.range(int(sys.argv[1])).count()
with open(sys.argv[2], "w") as f:
    f.write(str(n))
spark.stop()
