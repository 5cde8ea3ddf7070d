"""jetlab.train"""
